"""Email deliverables: what a lead gets by email after texting back an address.

When an inbound SMS reply captures an email address, the caller records a deliverable job and
a sensor later processes it once. This package holds the pure parts of that:

- `catalogue`: which deliverable each client sends (id, title, queue, subject and body
  templates), read from `catalogue.yaml` and validated once per process;
- `email`: building the message (`compose`) and handing it to an SMTP server (`send`), with
  refusals classified as permanent or retryable (`EmailRefused`).

The database table, the sensor and the settings belong to the caller; nothing here touches the
database, Dagster or FastAPI. `outreach_core.sandbox.smtp` is the loopback SMTP server used by
the tests and by sandbox mode."""
