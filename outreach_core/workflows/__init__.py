"""Follow-up workflows: definitions as data (`definitions`, `defaults.yaml`), triggers in
set-based SQL (`triggers`), the sensor's look at every team (`tick`), the executor with
the guardrails (`executor`), what each step does (`actions`), executions, approvals and the
schedule as people see them (`executions`, `schedule`), tasks for people (`tasks`)."""
