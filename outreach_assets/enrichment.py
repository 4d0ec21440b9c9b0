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
# Enrichment of a partition waits while more of its uploads are being ingested (a burst
# of uploads then costs one enrichment run, and the runs do not compete for the CPU),
# but never longer than this.
MAX_DEFERRAL_SECONDS = 300


class EnrichCursor(BaseModel):
    """Where the sensor is in the event log, and the partitions it is holding back:
    partition -> (the ingest run that asked, when it was first held back)."""

    after: int | None = None
    deferred: dict[str, tuple[str, float]] = {}


@dg.sensor(
    job=enrich_job,
    minimum_interval_seconds=10,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def enrich_after_ingest_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """Enrichment follows ingestion: after ingest runs succeed, each of their partitions
    gets one enrichment run, once no more of its uploads are being ingested (at most
    MAX_DEFERRAL_SECONDS later), and none while one already waits in the queue: a waiting
    run reads the partition's open leads when it starts, so it covers every ingest before
    it. Ten uploads of one partition queue one enrichment, not ten."""
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
    asking = dict(cursor.deferred)
    run_ids = [r.event_log_entry.run_id for r in changes.records]
    order = {run_id: i for i, run_id in enumerate(run_ids)}
    succeeded = (
        context.instance.get_runs(dg.RunsFilter(run_ids=run_ids, job_name=ingest_job.name))
        if run_ids
        else []
    )
    for run in sorted(succeeded, key=lambda r: order[r.run_id]):
        partition = run.tags.get(PARTITION_TAG)
        if partition is not None:
            asking[partition] = (run.run_id, asking.get(partition, ("", now))[1])
    waiting = {
        run.tags.get(PARTITION_TAG)
        for run in live_runs(context.instance, enrich_job.name)
        if run.status in WAITING
    }
    ingesting = {
        run.tags.get(PARTITION_TAG) for run in live_runs(context.instance, ingest_job.name)
    }
    requests, deferred = [], {}
    for partition, (run_id, since) in asking.items():
        if partition in waiting:
            continue
        if partition in ingesting and now - since < MAX_DEFERRAL_SECONDS:
            deferred[partition] = (run_id, since)
            continue
        requests.append(dg.RunRequest(run_key=f"enrich-after:{run_id}", partition_key=partition))
    after = changes.records[-1].storage_id if changes.records else cursor.after
    return dg.SensorResult(
        run_requests=requests,
        cursor=EnrichCursor(after=after, deferred=deferred).model_dump_json(),
        skip_reason=None if requests else f"{len(deferred)} partitions wait for their ingestion",
    )
