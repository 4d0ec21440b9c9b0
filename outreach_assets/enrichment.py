"""Enrichment assets: the leads of a team x sector partition matched against Apollo, with
the dedup cache, the shared rate limiter, the budget and the cost ledger in between."""

import dagster as dg

from outreach_assets.ingestion import leads
from outreach_assets.partitions import team_and_sector, team_sector_partitions
from outreach_assets.resources import ApolloResource
from outreach_assets.sensors import ingest_job
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


enrich_job = dg.define_asset_job(
    "enrich_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Match one team x sector partition's open leads against Apollo.",
)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    monitored_jobs=[ingest_job],
    request_job=enrich_job,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def enrich_after_ingest_sensor(context: dg.RunStatusSensorContext) -> dg.RunRequest | None:
    """Enrichment follows ingestion: every successful ingest run queues an enrichment run
    for its partition (one per ingest run, by run key)."""
    run = context.dagster_run
    partition = run.tags.get("dagster/partition")
    if partition is None:
        return None
    return dg.RunRequest(run_key=f"enrich-after:{run.run_id}", partition_key=partition)
