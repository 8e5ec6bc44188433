"""Every name that crosses a boundary: labels, annotations, ports, metric names, groups.

Pure constants, no I/O. Builders, the scaler and the instrumentation import their
names from here so that a rename happens in exactly one place.
"""

from __future__ import annotations

from typing import Final

# --- identity -----------------------------------------------------------------------------
#: Label the Function patch adds to ``spec.serving.labels``; OpenFunction copies it to pods.
FUNCTION_POD_LABEL: Final = "ofobserve.io/function"
#: Prefix of the per-function setting annotations on a Function object.
ANNOTATION_PREFIX: Final = "ofobserve.io/"
#: Label on every object ofobserve generates.
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE: Final = "ofobserve"

#: Series labels every profile's series carry after the monitor's relabelling.
NAMESPACE_LABEL: Final = "namespace"
FUNCTION_LABEL: Final = "function"

# --- OpenFunction facts (fact sheet section 7) ------------------------------------------------
FUNCTION_CONTAINER: Final = "function"
OPENFUNCTION_MANAGED_LABEL: Final = "openfunction.io/managed"
OPENFUNCTION_SERVING_LABEL: Final = "openfunction.io/serving"
DAPR_SERVICE_MODE_ANNOTATION: Final = "openfunction.io/dapr-service-mode"
DAPR_APP_ID_ANNOTATION: Final = "dapr.io/app-id"


def dapr_app_id(namespace: str, name: str) -> str:
    """Dapr app id OpenFunction gives a function: ``<function>-<namespace>``."""
    return f"{name}-{namespace}"


# --- metric profiles --------------------------------------------------------------------------
PROFILE_NATIVE: Final = "ofobserve"
PROFILE_KNATIVE: Final = "knative"
PROFILE_KEDA_HTTP: Final = "keda-http"
PROFILE_DAPR: Final = "dapr"
PROFILES: Final = (PROFILE_NATIVE, PROFILE_KNATIVE, PROFILE_KEDA_HTTP, PROFILE_DAPR)

#: Knative metric name generations: <=1.18 OpenCensus names, >=1.19 OpenTelemetry names.
KNATIVE_OPENCENSUS: Final = "opencensus"
KNATIVE_OTEL: Final = "otel"
KNATIVE_GENERATIONS: Final = (KNATIVE_OPENCENSUS, KNATIVE_OTEL)

# --- scrape endpoints -------------------------------------------------------------------------
#: Port of the native profile's metrics server (``ofobserve.instrument``).
NATIVE_METRICS_PORT: Final = 9464
METRICS_PATH: Final = "/metrics"
QUEUE_PROXY_CONTAINER: Final = "queue-proxy"
QUEUE_PROXY_METRICS_PORT_NAME: Final = "http-usermetric"
DAPR_CONTAINER: Final = "daprd"
DAPR_METRICS_PORT_NAME: Final = "dapr-metrics"
KEDA_HTTP_INTERCEPTOR_PORT_NAME: Final = "metrics"

# --- native profile metric names (DESIGN.md "Metric contract") -----------------------------------
NATIVE_REQUESTS_TOTAL: Final = "function_requests_total"
NATIVE_ERRORS_TOTAL: Final = "function_errors_total"
NATIVE_DURATION_SECONDS: Final = "function_request_duration_seconds"
NATIVE_IN_FLIGHT: Final = "function_requests_in_flight"
NATIVE_COLD_STARTS_TOTAL: Final = "function_cold_starts_total"
