#!/usr/bin/env bash
# Build the hpcdl image on a CPU base, without a registry or a daemon (buildah, chroot isolation):
#   1. a Debian bookworm root file system (debootstrap, minbase) imported as an image;
#   2. containers/Dockerfile.cpu-base on it: a venv with torch (CPU) as `python`;
#   3. containers/Dockerfile, unchanged, with BASE_IMAGE set to that base.
# Every step is cached (image present: skipped; buildah layers: reused), so a second run only
# rebuilds what changed. Run from anywhere as root; needs buildah and debootstrap.
#   containers/build-cpu-base.sh [IMAGE_TAG]     (default localhost/hpcdl:cpu)
# Environment: DOCKERFILE (default containers/Dockerfile), DEBIAN_MIRROR (default: the first URI apt uses here), PIP_MOUNTS (extra
# `-v host:container:ro` options for pip; default: this machine's pip configuration, CA bundle
# and local wheel/index directories where they exist).
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-localhost/hpcdl:cpu}
dockerfile=${DOCKERFILE:-$repo/containers/Dockerfile}
rootfs_image=localhost/hpcdl-debian-rootfs:bookworm
base_image=localhost/hpcdl-cpu-base:2.13.0
isolation=(--isolation chroot)

for tool in buildah debootstrap; do
  command -v "$tool" >/dev/null || { echo "build-cpu-base: $tool not found (apt-get install $tool)" >&2; exit 2; }
done

mirror=${DEBIAN_MIRROR:-}
if [[ -z $mirror ]]; then
  mirror=$(sed -n 's/^URIs:[[:space:]]*\([^[:space:]]*\).*/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1 || true)
fi
if [[ -z $mirror && -f /etc/apt/sources.list ]]; then
  mirror=$(awk '$1 == "deb" && $2 !~ /\[/ && $0 !~ /security/ {print $2; exit}' /etc/apt/sources.list)
fi
mirror=${mirror:-http://deb.debian.org/debian}

# pip in the build uses this machine's configuration (proxy CA, local wheels and indexes), read-only.
if [[ -z ${PIP_MOUNTS+x} ]]; then
  PIP_MOUNTS=""
  for path in /etc/pip.conf /etc/ssl/certs/ca-certificates.crt /opt/wheels /opt/pypi /opt/pypi-more; do
    [[ -e $path ]] && PIP_MOUNTS+=" -v $path:$path:ro"
  done
  [[ -f $HOME/.config/pip/pip.conf ]] && PIP_MOUNTS+=" -v $HOME/.config/pip/pip.conf:/etc/xdg/pip/pip.conf:ro"
fi
read -r -a pip_mounts <<<"$PIP_MOUNTS"

exists() { buildah inspect --type image "$1" >/dev/null 2>&1; }
seconds() { echo $(( $(date +%s) - $1 )); }

if ! exists "$rootfs_image"; then
  start=$(date +%s)
  dir=$(mktemp -d /var/tmp/hpcdl-rootfs.XXXXXX)
  trap 'rm -rf "$dir"' EXIT
  echo "build-cpu-base: debootstrap bookworm from $mirror" >&2
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$dir" "$mirror" >&2
  # apt in the image reads the same mirror; the lists debootstrap left are not needed.
  echo "deb $mirror bookworm main" >"$dir/etc/apt/sources.list"
  rm -rf "$dir"/var/lib/apt/lists/* "$dir"/var/cache/apt/archives/*.deb
  ctr=$(buildah from scratch)
  mnt=$(buildah mount "$ctr")
  tar -C "$dir" -c . | tar -C "$mnt" -x
  buildah umount "$ctr" >/dev/null
  buildah config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin --cmd /bin/bash "$ctr"
  buildah commit -q "$ctr" "$rootfs_image" >/dev/null
  buildah rm "$ctr" >/dev/null
  echo "build-cpu-base: root file system $rootfs_image in $(seconds "$start") s" >&2
fi

start=$(date +%s)
if ! exists "$base_image"; then
  buildah bud "${isolation[@]}" --layers -q "${pip_mounts[@]}" \
    -f "$repo/containers/Dockerfile.cpu-base" -t "$base_image" "$repo/containers" >&2
  echo "build-cpu-base: base $base_image in $(seconds "$start") s" >&2
fi

start=$(date +%s)
buildah bud "${isolation[@]}" --layers -q "${pip_mounts[@]}" \
  --build-arg "BASE_IMAGE=$base_image" -f "$dockerfile" -t "$tag" "$repo" >&2
echo "build-cpu-base: image $tag in $(seconds "$start") s" >&2
echo "$tag"
