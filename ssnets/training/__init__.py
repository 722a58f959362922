"""The training loop: one job from a composed config to a trained, evaluated and logged model.

`job.train` runs the steps in order (set up, resolve the job, load data, fit, evaluate
and log); the other modules are the pieces it composes: `fit` (compile and fit),
`evaluate` (final metrics over whole splits), `callbacks` and `schedules` (the
`callbacks` config group), `monitor` (trainer.monitor, the one metric every selection
uses), `checkpoint` and `resume` (surviving interruptions), `distribute` and
`device_share` (where a job runs), `signals`, `divergence` and `compile_time` (what a
run watches while it trains), `runtime` (seeds, precision, tags) and `validation`
(config checks before any heavy work).

May import `ssnets.common`, `ssnets.data`, `ssnets.models`, `ssnets.task` and
`ssnets.tracking` (through its Tracker protocol); never the commands.
"""
