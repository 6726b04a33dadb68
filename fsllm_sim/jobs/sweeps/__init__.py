"""Sweeps at scale: a sweep file expanded into runs, run in parallel, kept per run, summarised across seeds.

Read in this order:

* :mod:`.plan`       the sweep file (:mod:`fsllm_sim.config.sweep_file`) expanded into validated points and runs
  (point x method x seed), each keyed by the hash of its resolved configuration;
* :mod:`.points`     the work of one run, a picklable top-level function: the analytic closed form or the event
  engine, giving one result row;
* :mod:`.executors`  where runs execute: in this process, on a persistent pool of local processes, or as Ray tasks;
* :mod:`.results`    the run directory: one file per finished run (written atomically, so a killed sweep resumes
  with nothing lost or run twice), the tables and the summaries across seeds.

The job itself (:func:`fsllm_sim.jobs.sweep.run_sweep_file`) ties them together.
"""
