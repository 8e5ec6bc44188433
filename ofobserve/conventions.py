"""Every name that crosses a boundary: labels, annotations, ports, metric names, groups.

Pure constants, no I/O. Builders, the scaler and the instrumentation import their
names from here so that a rename happens in exactly one place.
"""

from __future__ import annotations

import hashlib
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
#: Label of the dapr-proxy Deployment and pods (value: the Serving's name). They also carry
#: ``spec.serving.labels``, hence ``ofobserve.io/function`` (OpenFunction/OpenFunction
#: ``pkg/core/serving/common/common.go`` ``CreateDaprProxy``), so every count of a
#: function's pods or Deployments must leave them out.
OPENFUNCTION_PROXY_LABEL: Final = "openfunction.io/proxy"
#: The dapr-proxy Deployment's name, ``<serving>-proxy-deployment-<version>-<random>``; a
#: function's own is ``<serving>-deployment-...``. kube-state-metrics exports names always,
#: labels only when allowlisted, so series drop the proxy by name.
DAPR_PROXY_DEPLOYMENT_REGEX: Final = ".+-proxy-deployment-.+"


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
#: Its number: queue-proxy's request metrics, both name generations (knative/serving
#: ``pkg/networking/constants.go`` ``UserQueueMetricsPort``; ``pkg/queue/sharedmain/otel.go``
#: forces it for ``request-metrics-protocol: prometheus``). 9090 is the autoscaler's.
QUEUE_PROXY_METRICS_PORT: Final = 9091
DAPR_CONTAINER: Final = "daprd"
DAPR_METRICS_PORT_NAME: Final = "dapr-metrics"
#: The KEDA HTTP interceptor's Prometheus exporter (kedacore/http-add-on
#: ``OTEL_PROM_EXPORTER_PORT`` default; the chart's ``interceptor.metrics.port``).
KEDA_HTTP_INTERCEPTOR_METRICS_PORT: Final = 2223
#: The interceptor's labels naming a request's route (from 0.14: kedacore/http-add-on
#: ``interceptor/metrics/instruments.go`` ``AttrRouteName``, ``AttrRouteNamespace``): the
#: HTTPScaledObject's name and namespace.
KEDA_HTTP_ROUTE_NAME_LABEL: Final = "route_name"
KEDA_HTTP_ROUTE_NAMESPACE_LABEL: Final = "route_namespace"

# --- native profile metric names (DESIGN.md "Metric contract") -----------------------------------
NATIVE_REQUESTS_TOTAL: Final = "function_requests_total"
NATIVE_ERRORS_TOTAL: Final = "function_errors_total"
NATIVE_DURATION_SECONDS: Final = "function_request_duration_seconds"
NATIVE_IN_FLIGHT: Final = "function_requests_in_flight"
NATIVE_COLD_STARTS_TOTAL: Final = "function_cold_starts_total"

# --- Grafana dashboards -------------------------------------------------------------------------
DASHBOARD_UID_MAX: Final = 40


def dashboard_uid(namespace: str, name: str) -> str:
    """The stable uid of a function's dashboard: ``<namespace>_<name>`` when it fits in 40
    characters and the name has no ``.`` (Grafana uids allow only letters, digits, ``-``
    and ``_``; neither part can hold ``_``, so it is unambiguous), else ``h-`` and 38 hex
    digits of its SHA-256 (no ``_``, so the two forms never meet)."""
    readable = f"{namespace}_{name}"
    if len(readable) <= DASHBOARD_UID_MAX and "." not in name:
        return readable
    digest = hashlib.sha256(f"{namespace}/{name}".encode()).hexdigest()
    return "h-" + digest[: DASHBOARD_UID_MAX - 2]


# --- rules: recording-rule names (level:metric:operations) -------------------------------------
RULE_GROUP_PREFIX: Final = "ofobserve"
RECORD_LEVEL: Final = "namespace_function"


def record_requests_rate(window: str) -> str:
    """Requests per second over ``window``."""
    return f"{RECORD_LEVEL}:requests:rate{window}"


def record_errors_rate(window: str) -> str:
    """Failed requests per second over ``window``."""
    return f"{RECORD_LEVEL}:errors:rate{window}"


def record_error_ratio(window: str) -> str:
    """Share of failed requests over ``window`` (no sample without traffic)."""
    return f"{RECORD_LEVEL}:error_ratio:rate{window}"


def record_latency_quantile(window: str) -> str:
    """Latency quantile in seconds over ``window``; the ``quantile`` label says which."""
    return f"{RECORD_LEVEL}:request_duration_seconds:quantile_rate{window}"


RECORD_IN_FLIGHT: Final = f"{RECORD_LEVEL}:requests_in_flight:sum"
#: 1 per HPA that scales the function, with ``horizontalpodautoscaler``, ``scaledObject``
#: (KEDA's default HPA name ``keda-hpa-<scaledObject>``) and ``exported_namespace``: the
#: join that finds KEDA's and the HPA's series of a function in every mode.
RECORD_KEDA_SCALER_INFO: Final = f"{RECORD_LEVEL}:keda_scaler:info"
KSM_HPA_INFO: Final = "kube_horizontalpodautoscaler_info"
RECORD_REPLICAS_DESIRED: Final = f"{RECORD_LEVEL}:replicas_desired:sum"
RECORD_REPLICAS_AVAILABLE: Final = f"{RECORD_LEVEL}:replicas_available:sum"
RECORD_REPLICAS_UNAVAILABLE: Final = f"{RECORD_LEVEL}:replicas_unavailable:sum"
QUANTILE_LABEL: Final = "quantile"
#: Quantiles recorded for every function (the SLO and alert quantiles are added).
RECORDED_QUANTILES: Final = (0.5, 0.9, 0.95, 0.99)
#: Window of the operational recordings and alerts.
OPERATIONAL_WINDOW: Final = "5m"

# --- rules: the fleet's intermediate series (docs/alerts.md "How the rules are built") -------
#: Events of the last 5 minutes, per function, recorded once per profile for the whole fleet;
#: every longer window sums them (``sum_over_time``), never ``rate(raw[long])``.
RECORD_REQUESTS_INCREASE: Final = f"{RECORD_LEVEL}:requests:increase5m"
RECORD_ERRORS_INCREASE: Final = f"{RECORD_LEVEL}:errors:increase5m"
RECORD_OBSERVED_INCREASE: Final = f"{RECORD_LEVEL}:requests_observed:increase5m"
RECORD_SLOW_INCREASE: Final = f"{RECORD_LEVEL}:requests_slow:increase5m"
#: Latency-histogram bucket rates by ``le`` (in the profile's own unit, a trailing ``.0``
#: removed so ``1`` and ``1.0`` are one bucket).
RECORD_BUCKET_RATE: Final = f"{RECORD_LEVEL}:request_duration_bucket:rate5m"
#: Label of the intermediate series: the rule family (profile) that recorded them, so that
#: no family reads another's; published series (the names above) do not carry it.
FLEET_RULES_LABEL: Final = "ofobserve_rules"
#: Prefix of the fleet's PrometheusRules and their groups (``ofobserve-fleet-<family>``,
#: ``ofobserve-fleet-common``); their files are under the rules group's ``fleet/``.
FLEET_RULES_NAME: Final = "ofobserve-fleet"
FLEET_RULES_FOLDER: Final = "fleet"

# --- rules: per-function constant series (the only rules that grow with the fleet) ---------
#: 1 per function, with its identity labels and :data:`FLEET_RULES_LABEL` = its family:
#: which functions a family's rules record.
RECORD_FUNCTION_INFO: Final = "ofobserve:function:info"
#: Set to 1 on :data:`RECORD_FUNCTION_INFO` of a function KEDA scales.
KEDA_INFO_LABEL: Final = "ofobserve_keda"
#: The latency SLO threshold in seconds; its ``le`` label is the bucket that counts the
#: requests within it, as :data:`RECORD_BUCKET_RATE` writes it.
RECORD_SLO_LATENCY_THRESHOLD: Final = "ofobserve:slo:latency_threshold_seconds"
#: The low-traffic guard: requests the long window must hold before a burn-rate alert fires.
RECORD_SLO_MIN_REQUESTS: Final = "ofobserve:slo:min_requests"
#: ``burnRate * errorBudget`` of one burn-rate pair, labelled by the pair.
RECORD_SLO_BURN_THRESHOLD: Final = "ofobserve:slo:burn_threshold:ratio"
BURN_LONG_LABEL: Final = "ofobserve_long"
BURN_SHORT_LABEL: Final = "ofobserve_short"
BURN_SEVERITY_LABEL: Final = "ofobserve_severity"
#: One per function and alert (and severity, or ``reason``): the alert's threshold as the
#: value, the alert's labels (``severity``, ``team``, ``alerting.labels``) that the alert
#: copies with ``group_left``, and the annotation fields (``ofobserve_*``) its templates read.
RECORD_ALERT_THRESHOLD: Final = "ofobserve:alert:threshold"
ALERT_NAME_LABEL: Final = "ofobserve_alert"
ANNOTATION_LABEL_PREFIX: Final = "ofobserve_"

# --- rules: Sloth-compatible SLO series ----------------------------------------------------------


def slo_sli_error(window: str) -> str:
    return f"slo:sli_error:ratio_rate{window}"


SLO_OBJECTIVE: Final = "slo:objective:ratio"
SLO_ERROR_BUDGET: Final = "slo:error_budget:ratio"
SLO_TIME_PERIOD_DAYS: Final = "slo:time_period:days"
SLO_CURRENT_BURN_RATE: Final = "slo:current_burn_rate:ratio"
SLO_PERIOD_BURN_RATE: Final = "slo:period_burn_rate:ratio"
SLO_PERIOD_BUDGET_REMAINING: Final = "slo:period_error_budget_remaining:ratio"
SLO_INFO: Final = "sloth_slo_info"
SLOTH_ID: Final = "sloth_id"
SLOTH_SERVICE: Final = "sloth_service"
SLOTH_SLO: Final = "sloth_slo"
SLOTH_WINDOW: Final = "sloth_window"
SLO_AVAILABILITY: Final = "availability"
SLO_LATENCY: Final = "latency"
#: The short window the current burn rate is read over (as Sloth).
SLO_CURRENT_WINDOW: Final = "5m"


def sloth_service(namespace: str, name: str) -> str:
    """Sloth's ``service`` of a function: ``<namespace>/<name>`` (neither part holds ``/``)."""
    return f"{namespace}/{name}"


# --- fleet metrics (fact sheet sections 5 and 6) -------------------------------------------------
KSM_DEPLOYMENT_LABELS: Final = "kube_deployment_labels"
KSM_DEPLOYMENT_SPEC_REPLICAS: Final = "kube_deployment_spec_replicas"
KSM_DEPLOYMENT_AVAILABLE: Final = "kube_deployment_status_replicas_available"
KSM_DEPLOYMENT_UNAVAILABLE: Final = "kube_deployment_status_replicas_unavailable"
#: kube-state-metrics' name for the ``ofobserve.io/function`` label (needs the allowlist
#: ``--metric-labels-allowlist=deployments=[ofobserve.io/function]``).
KSM_FUNCTION_LABEL: Final = "label_ofobserve_io_function"
#: KEDA's per-scaler error counter comes in two generations, both labelled ``namespace``
#: (the ScaledObject's), ``scaledObject``, ``scaler``, ``metric`` and an index
#: (``scalerIndex`` in older releases, ``triggerIndex`` and ``type`` in current ones):
#: ``keda_scaler_errors`` from 2.9 to 2.16 (kedacore/keda ``pkg/prommetrics/prommetrics.go``,
#: later ``pkg/metricscollector/prommetrics.go``) and ``keda_scaler_detail_errors_total``
#: from 2.14; 2.14-2.16 export both. ``keda_scaler_errors_total`` (up to 2.16) is no help:
#: it has no labels at all.
KEDA_SCALER_ERRORS: Final = "keda_scaler_detail_errors_total"
KEDA_SCALER_ERRORS_LEGACY: Final = "keda_scaler_errors"
KEDA_NAMESPACE_LABEL: Final = "exported_namespace"
KEDA_SCALED_OBJECT_LABEL: Final = "scaledObject"
#: The labels that tell one scaler's series apart in both generations (the index label
#: changed its name, so it is not one of them).
KEDA_SCALER_SERIES: Final = (KEDA_NAMESPACE_LABEL, KEDA_SCALED_OBJECT_LABEL, "scaler", "metric")

# --- the ofobserve scaler's own metrics (labels ``namespace``, ``function``) ----------------------
SCALER_SAMPLE_AGE_SECONDS: Final = "ofobserve_scaler_sample_age_seconds"
#: The scaler's own metrics. Gauges unless noted; all carry ``namespace`` and ``function``
#: except the gRPC ones. ``ofobserve scaler`` must emit exactly these names.
SCALER_DESIRED_REPLICAS: Final = "ofobserve_scaler_desired_replicas"
SCALER_METRIC_VALUE: Final = "ofobserve_scaler_metric_value"  # + ``metric``: sent to KEDA
SCALER_METRIC_TARGET: Final = "ofobserve_scaler_metric_target"  # + ``metric``
SCALER_ACTIVE: Final = "ofobserve_scaler_active"
SCALER_PANIC_MODE: Final = "ofobserve_scaler_panic_mode"
SCALER_OBSERVED_CONCURRENCY: Final = "ofobserve_scaler_observed_concurrency"
SCALER_OBSERVED_LATENCY_SECONDS: Final = "ofobserve_scaler_observed_latency_seconds"
#: The function's own ready replicas as read (never dapr-proxy pods); none while unknown.
SCALER_OBSERVED_READY_REPLICAS: Final = "ofobserve_scaler_observed_ready_replicas"
#: daprd's ``/metrics`` port in function and dapr-proxy pods (dapr/dapr
#: ``pkg/metrics/options.go``; fact sheet section 4), where ``--source direct`` reads Dapr.
DAPR_METRICS_PORT: Final = 9090
#: The HPA's default ``--horizontal-pod-autoscaler-tolerance`` (kubernetes/kubernetes
#: ``pkg/controller/podautoscaler/config/v1alpha1/defaults.go``).
HPA_DEFAULT_TOLERANCE: Final = 0.1
#: Counter, + ``source`` (``prometheus`` or ``direct``) and ``reason``.
SCALER_SOURCE_ERRORS_TOTAL: Final = "ofobserve_scaler_source_errors_total"
#: Histogram of one source read, + ``source``.
SCALER_SOURCE_DURATION_SECONDS: Final = "ofobserve_scaler_source_request_duration_seconds"
#: The gRPC server metrics, named as go-grpc-prometheus and py-grpc-prometheus name them:
#: counter ``grpc_server_handled_total{grpc_service,grpc_method,grpc_type,grpc_code}`` and
#: histogram ``grpc_server_handling_seconds{grpc_service,grpc_method,grpc_type}``.
GRPC_SERVER_HANDLED_TOTAL: Final = "grpc_server_handled_total"
GRPC_SERVER_HANDLING_SECONDS: Final = "grpc_server_handling_seconds"

# --- fleet metrics the dashboards read (fact sheet sections 5 and 6) ---------------------------
KSM_POD_LABELS: Final = "kube_pod_labels"
KSM_CONTAINER_REQUESTS: Final = "kube_pod_container_resource_requests"
KSM_CONTAINER_LIMITS: Final = "kube_pod_container_resource_limits"
KSM_HPA_DESIRED: Final = "kube_horizontalpodautoscaler_status_desired_replicas"
KSM_HPA_MIN: Final = "kube_horizontalpodautoscaler_spec_min_replicas"
KSM_HPA_MAX: Final = "kube_horizontalpodautoscaler_spec_max_replicas"
KSM_HPA_LABEL: Final = "horizontalpodautoscaler"
CADVISOR_CPU_SECONDS_TOTAL: Final = "container_cpu_usage_seconds_total"
CADVISOR_MEMORY_WORKING_SET: Final = "container_memory_working_set_bytes"
KEDA_SCALER_VALUE: Final = "keda_scaler_metrics_value"
KEDA_SCALER_ACTIVE: Final = "keda_scaler_active"


def keda_hpa_name(scaled_object: str) -> str:
    """The HPA KEDA creates for a ScaledObject (KEDA's ``getDefaultHpaName``)."""
    return f"keda-hpa-{scaled_object}"


# --- log and trace pipelines -------------------------------------------------------------------
#: The Fluent Bit tail input's offset database: directly in ``/var/log``, the one directory
#: the fluent-bit Helm chart mounts read-write (fluent/helm-charts ``charts/fluent-bit``).
FLUENT_BIT_TAIL_DB: Final = "/var/log/flb_ofobserve_functions.db"
#: The collector's OTLP gRPC exporter, named as from v0.144.0 (open-telemetry/opentelemetry-
#: collector PR #14403, #14397; ``otlphttp`` became ``otlp_http``), and as before it (since
#: then a deprecated alias). The ``otlp`` receiver kept its name.
OTLP_GRPC_EXPORTER: Final = "otlp_grpc"
OTLP_GRPC_EXPORTER_LEGACY: Final = "otlp"

# --- Knative Serving >= 1.19 observability (knative/serving ``pkg/observability/config.go``) ------
KNATIVE_SERVING_NAMESPACE: Final = "knative-serving"
KNATIVE_OBSERVABILITY_CONFIGMAP: Final = "config-observability"
#: The queue-proxy's request-metrics export: ``none`` (the default) serves nothing on 9091.
KNATIVE_REQUEST_METRICS_PROTOCOL: Final = "request-metrics-protocol"
KNATIVE_REQUEST_METRICS_ENDPOINT: Final = "request-metrics-endpoint"
KNATIVE_PROTOCOL_PROMETHEUS: Final = "prometheus"

# --- Grafana delivery ----------------------------------------------------------------------------
#: Label the kube-prometheus-stack Grafana sidecar looks for, and its value.
GRAFANA_SIDECAR_LABEL: Final = "grafana_dashboard"
GRAFANA_SIDECAR_VALUE: Final = "1"
#: Annotation naming the folder (the sidecar's ``folderAnnotation``).
GRAFANA_FOLDER_ANNOTATION: Final = "grafana_folder"
DASHBOARD_TAG: Final = "ofobserve"
FUNCTION_DASHBOARD_TAG: Final = "ofobserve-function"
OVERVIEW_DASHBOARD_UID: Final = "ofobserve-overview"
SCALER_DASHBOARD_UID: Final = "ofobserve-scaler"
#: Recorded info series (value 1) that maps a function to its dashboard uid.
RECORD_DASHBOARD_INFO: Final = f"{RECORD_LEVEL}:dashboard:info"
DASHBOARD_UID_LABEL: Final = "dashboard_uid"
SCALER_PROMETHEUS_QUERIES_TOTAL: Final = "ofobserve_scaler_prometheus_queries_total"
SCALER_REGISTERED_FUNCTIONS: Final = "ofobserve_scaler_registered_functions"
#: Counter: functions dropped after ``--forget-after`` without a question from KEDA.
SCALER_FUNCTIONS_FORGOTTEN_TOTAL: Final = "ofobserve_scaler_functions_forgotten_total"
#: Histogram: how late the serving event loop wakes from a timed sleep.
SCALER_EVENT_LOOP_LAG_SECONDS: Final = "ofobserve_scaler_event_loop_lag_seconds"
#: Seconds: the chart's default OfobserveScalerEventLoopLag threshold on that histogram's p99
#: (``monitoring.prometheusRule.eventLoopLag``; a bucket bound, docs/decisions.md). The scaler
#: dashboard draws it.
SCALER_EVENT_LOOP_LAG_ALERT: Final = 0.1
SCALER_GRPC_SERVICE: Final = "externalscaler.ExternalScaler"
#: Counter: the direct source's pod watches started again, by ``resource`` and ``reason``
#: (``expired``, ``gone``: relisted, ``error``), as the controller's
#: :data:`CONTROLLER_WATCH_RESTARTS_TOTAL`.
SCALER_WATCH_RESTARTS_TOTAL: Final = "ofobserve_scaler_watch_restarts_total"
#: Gauge: 1 while every pod watch has listed and none has failed past its limit.
SCALER_POD_WATCH_UP: Final = "ofobserve_scaler_pod_watch_up"
#: Counter: rewrites of the ``--targets`` file refused (the last good table is kept).
SCALER_TARGETS_FILE_ERRORS_TOTAL: Final = "ofobserve_scaler_targets_file_errors_total"

# --- ofobserve controller (docs/controller.md) ---------------------------------------------------
#: Labels on every object the controller applies for a function, beside ``managed-by`` and
#: :data:`FUNCTION_POD_LABEL` (the name): the namespace, so that a dashboard ConfigMap in
#: Grafana's namespace still names its function.
FUNCTION_NAMESPACE_LABEL: Final = "ofobserve.io/function-namespace"
#: Label of the fleet objects the controller applies (the overview and scaler dashboards);
#: its value is the controller's ``--fleet-namespace``, which tells two controllers' apart.
FLEET_LABEL: Final = "ofobserve.io/fleet"
CONTROLLER_FIELD_MANAGER: Final = "ofobserve"
CONTROLLER_FUNCTION_FIELD_MANAGER: Final = "ofobserve-function-label"
CONTROLLER_RECONCILES_TOTAL: Final = "ofobserve_controller_reconciles_total"
CONTROLLER_RECONCILE_SECONDS: Final = "ofobserve_controller_reconcile_duration_seconds"
CONTROLLER_QUEUE_DEPTH: Final = "ofobserve_controller_queue_depth"
CONTROLLER_WATCH_RESTARTS_TOTAL: Final = "ofobserve_controller_watch_restarts_total"
CONTROLLER_APPLIED_TOTAL: Final = "ofobserve_controller_applied_objects_total"
CONTROLLER_DELETED_TOTAL: Final = "ofobserve_controller_deleted_objects_total"
CONTROLLER_RENDER_FAILURES_TOTAL: Final = "ofobserve_controller_render_failures_total"
CONTROLLER_LEADER: Final = "ofobserve_controller_leader"
CONTROLLER_FUNCTIONS: Final = "ofobserve_controller_functions"
#: Field manager of the scaling wiring the controller applies to a Function
#: (``spec.serving.scaleOptions``: render's ``scaling`` Function patch), and the count of
#: those applies refused with a 409 because another manager owns the fields.
CONTROLLER_SCALING_FIELD_MANAGER: Final = "ofobserve-scaling"
CONTROLLER_SCALING_CONFLICTS_TOTAL: Final = "ofobserve_controller_scaling_conflicts_total"
