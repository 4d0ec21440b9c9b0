"""Enrichment assets: the leads of a team x sector partition matched against Apollo, with
the dedup cache, the shared rate limiter, the budget and the cost ledger in between."""

import time

import dagster as dg
from pydantic import BaseModel

from outreach_assets.ingestion import leads
from outreach_assets.jobs import enrich_job, ingest_job
from outreach_assets.partitions import team_and_sector, team_sector_partitions
from outreach_assets.resources import ApolloResource
from outreach_assets.runs import PARTITION_TAG, WAITING, live_runs
from outreach_core.enrich.runner import StopReason, enrich_sector
from outreach_core.settings import get_settings

GROUP = "enrichment"


@dg.asset(
    partitions_def=team_sector_partitions,
    group_name=GROUP,
    kinds={"postgres"},
    deps=[leads],
)
def enriched_leads(
    context: dg.AssetExecutionContext, apollo: ApolloResource
) -> dg.MaterializeResult:
    """Every open lead of the partition with enough identifiers matched against Apollo:
    person and organisation fields, derived flags and the score. Each person is paid for
    at most once per cache window; spend is in the cost ledger and within the team's cap."""
    team_id, sector = team_and_sector(context)
    run_id = context.run.run_id
    stats = enrich_sector(
        team_id,
        sector,
        connection=apollo.connection(),
        options=apollo.options(reference=f"dagster_run:{run_id}"),
        run_id=run_id,
        log=context.log.info,
    )
    metadata = {name: value for name, value in stats.as_metadata().items() if value is not None}
    if stats.stopped is StopReason.BUDGET:
        context.log.warning(f"stopped: {stats.message}; the remaining leads stay open")
    elif stats.stopped is not None:
        raise dg.Failure(
            description=f"{stats.message}. Work done so far is saved; run again to resume.",
            metadata=metadata,
        )
    return dg.MaterializeResult(metadata=metadata)


# How many run successes one tick reads; the rest wait for the next tick.
_SUCCESSES_PER_TICK = 500


class Held(BaseModel):
    """A partition whose enrichment is held back: the ingest run that last asked for it,
    when the partition was first held back, and when its last ingest run succeeded."""

    run_id: str
    since: float
    last_success: float


class EnrichCursor(BaseModel):
    """Where the sensor is in the event log, and the partitions it is holding back."""

    after: int | None = None
    held: dict[str, Held] = {}


@dg.sensor(
    job=enrich_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def enrich_after_ingest_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Enrichment follows ingestion: after ingest runs succeed, each of their partitions
    gets one enrichment run once its ingestion has settled (no ingest run of it live, none
    finished in the last `enrich_settle_seconds`; at most `enrich_max_deferral_seconds`
    later), and none while one already waits in the queue: a waiting run reads the
    partition's open leads when it starts, so it covers every ingest before it. Ten uploads
    of one partition queue one enrichment, not ten."""
    settings = get_settings()
    cursor = EnrichCursor.model_validate_json(context.cursor or "{}")
    changes = context.instance.fetch_run_status_changes(
        # Every job's successes (OSS storage cannot filter them by job); ours are picked
        # out below.
        dg.RunStatusChangeRecordsFilter(
            event_type=dg.DagsterEventType.RUN_SUCCESS, after_storage_id=cursor.after
        ),
        limit=_SUCCESSES_PER_TICK,
        ascending=True,
    )
    now = time.time()
    held = dict(cursor.held)
    ended = {r.event_log_entry.run_id: r.event_log_entry.timestamp for r in changes.records}
    succeeded = (
        context.instance.get_runs(dg.RunsFilter(run_ids=list(ended), job_name=ingest_job.name))
        if ended
        else []
    )
    for run in sorted(succeeded, key=lambda r: ended[r.run_id]):
        partition = run.tags.get(PARTITION_TAG)
        if partition is not None:
            since = held[partition].since if partition in held else now
            held[partition] = Held(run_id=run.run_id, since=since, last_success=ended[run.run_id])
    waiting = {
        run.tags.get(PARTITION_TAG)
        for run in live_runs(context.instance, enrich_job.name)
        if run.status in WAITING
    }
    ingesting = {
        run.tags.get(PARTITION_TAG) for run in live_runs(context.instance, ingest_job.name)
    }
    requests, still_held = [], {}
    for partition, hold in held.items():
        if partition in waiting:
            continue
        busy = partition in ingesting or now - hold.last_success < settings.enrich_settle_seconds
        if busy and now - hold.since < settings.enrich_max_deferral_seconds:
            still_held[partition] = hold
            continue
        requests.append(
            dg.RunRequest(run_key=f"enrich-after:{hold.run_id}", partition_key=partition)
        )
    after = changes.records[-1].storage_id if changes.records else cursor.after
    return dg.SensorResult(
        run_requests=requests,
        cursor=EnrichCursor(after=after, held=still_held).model_dump_json(),
        skip_reason=(
            None if requests else f"{len(still_held)} partition(s) wait for ingestion to settle"
        ),
    )
