"""Experiments: a named set of runs, arms (override sets) × world sizes or system files × seeds.

:mod:`.runs` expands the ``experiments:`` config section to ordinary runs while the workflow is
parsed; :mod:`.gather`, :mod:`.stats`, :mod:`.score`, :mod:`.figures` and :mod:`.page` turn their
records into one page (``hpcdl experiment-report``, :mod:`.report`).
"""
