{{/* The chart's name, at most 63 characters. */}}
{{- define "ofobserve.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's full name: the release name when it already holds the chart name. */}}
{{- define "ofobserve.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* The scaler's objects: Deployment, Service, ServiceAccount, certificates. */}}
{{- define "ofobserve.scaler" -}}
{{- printf "%s-scaler" (include "ofobserve.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* A component's selector labels: (dict "context" $ "component" "scaler"). */}}
{{- define "ofobserve.componentSelectorLabels" -}}
app.kubernetes.io/name: {{ include "ofobserve.name" .context }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* A component's labels: (dict "context" $ "component" "scaler"). */}}
{{- define "ofobserve.componentLabels" -}}
helm.sh/chart: {{ printf "%s-%s" .context.Chart.Name .context.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "ofobserve.componentSelectorLabels" . }}
app.kubernetes.io/version: {{ .context.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .context.Release.Service }}
app.kubernetes.io/part-of: ofobserve
{{- end }}

{{- define "ofobserve.selectorLabels" -}}
{{- include "ofobserve.componentSelectorLabels" (dict "context" . "component" "scaler") }}
{{- end }}

{{- define "ofobserve.labels" -}}
{{- include "ofobserve.componentLabels" (dict "context" . "component" "scaler") }}
{{- end }}

{{- define "ofobserve.controllerSelectorLabels" -}}
{{- include "ofobserve.componentSelectorLabels" (dict "context" . "component" "controller") }}
{{- end }}

{{- define "ofobserve.controllerLabels" -}}
{{- include "ofobserve.componentLabels" (dict "context" . "component" "controller") }}
{{- end }}

{{/* The controller's objects: Deployment, ServiceAccount, settings ConfigMap, Lease. */}}
{{- define "ofobserve.controller" -}}
{{- printf "%s-controller" (include "ofobserve.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The controller's RBAC outside the release namespace (release namespace in the name). */}}
{{- define "ofobserve.controllerClusterUnique" -}}
{{- printf "%s-%s" (include "ofobserve.controller" .) .Release.Namespace | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "ofobserve.controllerReplicas" -}}
{{- $c := .Values.controller }}
{{- $replicas := ternary 2 1 $c.leaderElection }}
{{- if not (kindIs "invalid" $c.replicas) }}{{ $replicas = int $c.replicas }}{{ end }}
{{- if and (gt $replicas 1) (not $c.leaderElection) }}
{{- fail "controller.replicas above 1 needs controller.leaderElection: replicas without a Lease would all reconcile" }}
{{- end }}
{{- $replicas }}
{{- end }}

{{/* The controller's settings file: the chart's scaler address, authentication and
dashboard delivery as defaults, then controller.settings over them. */}}
{{- define "ofobserve.controllerSettings" -}}
{{- $scaling := dict "scalerAddress" (printf "%s.%s.svc:%v" (include "ofobserve.scaler" .) .Release.Namespace .Values.scaler.ports.grpc) }}
{{- if and (ne .Values.tls.mode "none") .Values.keda.triggerAuthentication.create }}
{{- $_ := set $scaling "triggerAuthentication" (dict "kind" .Values.keda.triggerAuthentication.kind "name" (include "ofobserve.triggerAuthenticationName" .)) }}
{{- end }}
{{- $d := .Values.dashboards }}
{{- $grafana := dict "folder" $d.folder "delivery" (ternary "configmap" "grafana-operator" (eq $d.kind "configMap")) }}
{{- if $d.namespace }}{{ $_ := set $grafana "namespace" $d.namespace }}{{ end }}
{{- if ne $d.kind "configMap" }}{{ $_ := set $grafana "instanceSelector" $d.instanceSelector.matchLabels }}{{ end }}
{{- $chart := dict "defaults" (dict "scaling" $scaling "grafana" $grafana) }}
{{- toYaml (mustMergeOverwrite $chart (deepCopy .Values.controller.settings)) }}
{{- end }}

{{- define "ofobserve.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "ofobserve.scaler" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "ofobserve.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The direct source lists and watches pods through the Kubernetes API; Prometheus needs no token. */}}
{{/* Objects outside the release namespace (cluster-scoped, or in cert-manager's, KEDA's or
the function namespaces): the release namespace is in the name, so that two releases of
the same name in different namespaces never claim the same object. At most 52 characters,
so that every suffix below (-selfsigned is the longest) fits in 63. */}}
{{- define "ofobserve.clusterUnique" -}}
{{- printf "%s-%s" (include "ofobserve.scaler" .) .Release.Namespace | trunc 52 | trimSuffix "-" }}
{{- end }}

{{- define "ofobserve.needsKubernetesAPI" -}}
{{- if eq .Values.scaler.source "direct" }}true{{- end }}
{{- end }}

{{/* The Secret the scaler serves TLS from. */}}
{{- define "ofobserve.tlsSecret" -}}
{{- if eq .Values.tls.mode "secret" }}
{{- required "tls.existingSecret is required with tls.mode: secret" .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "ofobserve.scaler" .) }}
{{- end }}
{{- end }}

{{/* The Secret KEDA's client certificate is in (in KEDA's or each function namespace). */}}
{{- define "ofobserve.clientSecret" -}}
{{- if eq .Values.tls.mode "secret" }}
{{- required "tls.existingClientSecret is required with tls.mode: secret and keda.triggerAuthentication.create (KEDA reads ca.crt from it, and tls.crt and tls.key with tls.mutual)" .Values.tls.existingClientSecret }}
{{- else }}
{{- printf "%s-client" (include "ofobserve.clusterUnique" .) }}
{{- end }}
{{- end }}

{{- define "ofobserve.triggerAuthenticationName" -}}
{{- default (include "ofobserve.clusterUnique" .) .Values.keda.triggerAuthentication.name }}
{{- end }}

{{/* Namespaces of the namespaced TriggerAuthentications (and their client certificates). */}}
{{- define "ofobserve.triggerAuthenticationNamespaces" -}}
{{- $namespaces := .Values.keda.triggerAuthentication.namespaces | default .Values.watchNamespaces }}
{{- if not $namespaces }}
{{- fail "keda.triggerAuthentication.kind TriggerAuthentication needs keda.triggerAuthentication.namespaces (or watchNamespaces)" }}
{{- end }}
{{- toJson $namespaces }}
{{- end }}

{{/* Where KEDA reads the client certificate: its own namespace, or each function's. */}}
{{- define "ofobserve.clientNamespaces" -}}
{{- if eq .Values.keda.triggerAuthentication.kind "ClusterTriggerAuthentication" }}
{{- toJson (list .Values.keda.namespace) }}
{{- else }}
{{- include "ofobserve.triggerAuthenticationNamespaces" . }}
{{- end }}
{{- end }}

{{/* The Service's DNS names, for the server certificate. */}}
{{- define "ofobserve.dnsNames" -}}
{{- $svc := include "ofobserve.scaler" . }}
{{- $ns := .Release.Namespace }}
{{- $names := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.%s" $svc $ns .Values.clusterDomain) }}
{{- toYaml (concat $names .Values.tls.extraDnsNames) }}
{{- end }}

{{/* The self-signed chain's CA: its ClusterIssuer, Certificate and Secret. */}}
{{- define "ofobserve.caName" -}}
{{- printf "%s-ca" (include "ofobserve.clusterUnique" .) }}
{{- end }}

{{/* The issuer of the server and client certificates. */}}
{{- define "ofobserve.issuerRef" -}}
{{- if .Values.tls.certManager.issuerRef.name }}
{{- toYaml .Values.tls.certManager.issuerRef }}
{{- else }}
name: {{ include "ofobserve.caName" . }}
kind: ClusterIssuer
group: cert-manager.io
{{- end }}
{{- end }}

{{- define "ofobserve.pdbApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) }}policy/v1{{- else }}policy/v1beta1{{- end }}
{{- end }}

{{/* Native gRPC probes are Kubernetes 1.24+; older clusters get a TCP probe of the same port. */}}
{{- define "ofobserve.probe" -}}
{{- if semverCompare ">=1.24-0" .context.Capabilities.KubeVersion.Version }}
grpc:
  port: {{ .context.Values.scaler.ports.health }}
{{- else }}
tcpSocket:
  port: health
{{- end }}
periodSeconds: {{ .probe.periodSeconds }}
timeoutSeconds: {{ .probe.timeoutSeconds }}
failureThreshold: {{ .probe.failureThreshold }}
{{- end }}

{{/* The scaler's command line; every value maps to one flag. */}}
{{- define "ofobserve.scalerArgs" -}}
{{- $s := .Values.scaler -}}
- scaler
- --listen=0.0.0.0:{{ $s.ports.grpc }}
- --metrics-listen=0.0.0.0:{{ $s.ports.metrics }}
- --health-listen=0.0.0.0:{{ $s.ports.health }}
- --source={{ $s.source }}
{{- if eq $s.source "prometheus" }}
- --prometheus-url={{ $s.prometheus.url }}
{{- if $s.prometheus.bearerTokenSecret.name }}
- --prometheus-bearer-token-file=/etc/ofobserve/prometheus-token/token
{{- end }}
{{- if $s.prometheus.basicAuth.username }}
{{- if not $s.prometheus.basicAuth.passwordSecret.name }}
{{- fail "scaler.prometheus.basicAuth.username needs scaler.prometheus.basicAuth.passwordSecret.name: the scaler reads the password from that Secret" }}
{{- end }}
- --prometheus-username={{ $s.prometheus.basicAuth.username }}
- --prometheus-password-file=/etc/ofobserve/prometheus-password/password
{{- end }}
{{- if $s.prometheus.caConfigMap.name }}
- --prometheus-ca-file=/etc/ofobserve/prometheus-ca/ca.crt
{{- end }}
{{- range $i, $h := $s.prometheus.headers }}
{{- if and (eq (lower $h.name) "authorization") (or $s.prometheus.bearerTokenSecret.name $s.prometheus.basicAuth.username) }}
{{- fail "scaler.prometheus.headers: an Authorization header cannot go with scaler.prometheus.bearerTokenSecret or scaler.prometheus.basicAuth" }}
{{- end }}
{{- if $h.secret }}
- --prometheus-header={{ $h.name }}=@/etc/ofobserve/prometheus-headers/{{ $i }}/value
{{- else }}
- {{ printf "--prometheus-header=%s=%s" $h.name $h.value | quote }}
{{- end }}
{{- end }}
{{- end }}
- --rate-window={{ $s.rateWindow }}
- --refresh-interval={{ $s.refreshInterval }}
- --max-staleness={{ $s.maxStaleness }}
- --forget-after={{ $s.forgetAfter }}
- --grace-period={{ $s.gracePeriod }}
- --log-format={{ $s.logFormat }}
{{- range .Values.watchNamespaces }}
- --watch-namespace={{ . }}
{{- end }}
{{- if ne .Values.tls.mode "none" }}
- --tls-cert=/etc/ofobserve/tls/tls.crt
- --tls-key=/etc/ofobserve/tls/tls.key
{{- if .Values.tls.mutual }}
- --tls-client-ca=/etc/ofobserve/tls/ca.crt
{{- end }}
{{- end }}
{{- range $s.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}
