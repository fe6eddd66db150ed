"""The local runtime as the benchmarks use it: quiet, unseeded, no schedule in the way, one merchant."""

from infra.local.runtime import LocalRuntime

# Every simulated buyer comes from 127.0.0.1: lift the per-buyer caps, as distinct buyers would not meet them.
DISTINCT_BUYERS = {"MAX_PENDING_PER_EMAIL": "1000000", "MAX_PENDING_PER_CLIENT": "1000000"}
QUIET_METRICS = {"POWERTOOLS_METRICS_DISABLED": "true"}  # EMF lines on stdout would drown the results


def start_runtime() -> LocalRuntime:
    runtime = LocalRuntime(
        port=0,
        quiet=True,
        seed=False,
        schedule_seconds=3600,
        log_level="WARNING",
        environment={**DISTINCT_BUYERS, **QUIET_METRICS},
    )
    runtime.start()
    from shared.adapters import shop  # after start: the environment is the runtime's

    shop().create_merchant("bench", api_key=runtime.merchant_key)
    return runtime
