"""Each function's Tracer (X-Ray) and Metrics (CloudWatch metrics as EMF log lines), one of each per
function, as Powertools recommends: a handler takes `@metrics.log_metrics` and
`@tracer.capture_lambda_handler`, and its own code adds to the same instances.

The tracer is off outside Lambda (Powertools checks `LAMBDA_TASK_ROOT`; the local runtime also sets
`POWERTOOLS_TRACE_DISABLED`), so tests and `make run` never look for an X-Ray daemon. Handlers' answers
are not recorded in traces (template: `POWERTOOLS_TRACER_CAPTURE_RESPONSE`): they can hold codes and
access tokens.
"""

import warnings
from functools import cache

from aws_lambda_powertools import Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.provider.cloudwatch_emf.cloudwatch import AmazonCloudWatchEMFProvider

NAMESPACE = "miaofa"  # the alarms' namespace (template.yaml)

# An invocation that counted nothing (a page view, an empty run) publishes nothing, and says nothing.
warnings.filterwarnings("ignore", message="No application metrics to publish")


@cache
def tracer(service: str) -> Tracer:
    """The function's tracer; its AWS SDK and HTTP calls are traced too (Powertools patches them)."""
    return Tracer(service=service)


@cache
def metrics(service: str) -> Metrics:
    """The function's metrics, in namespace miaofa with dimension `service`.

    Its own provider, so its metrics are never another instance's: Powertools' default shares one set
    across every Metrics of the process, one function on Lambda, every function in the local runtime.
    """
    return Metrics(provider=AmazonCloudWatchEMFProvider(namespace=NAMESPACE, service=service))


def count_for_alarm(name: str, service: str) -> None:
    """One of `name` with the `service` dimension only (an alarm's metric), published at once, apart
    from the function's own metrics and their other dimensions."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=1,
        namespace=NAMESPACE,
        default_dimensions={"service": service},
    ):
        pass
