{{/* Names, labels and the few decisions that several templates share. */}}

{{- define "sessiond.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sessiond.fullname" -}}
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

{{- define "sessiond.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sessiond.labels" -}}
helm.sh/chart: {{ include "sessiond.chart" . }}
{{ include "sessiond.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sessiond
{{- end }}

{{- define "sessiond.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sessiond.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "sessiond.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "sessiond.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "sessiond.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The development Redis. */}}
{{- define "sessiond.devRedis.fullname" -}}
{{- printf "%s-dev-redis" (include "sessiond.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "sessiond.devRedis.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sessiond.name" . }}-dev-redis
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: dev-redis
{{- end }}

{{- define "sessiond.devRedis.labels" -}}
helm.sh/chart: {{ include "sessiond.chart" . }}
{{ include "sessiond.devRedis.selectorLabels" . }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sessiond
{{- end }}

{{- define "sessiond.devRedis.image" -}}
{{- $img := .Values.devRedis.image }}
{{- if $img.digest }}
{{- printf "%s@%s" $img.repository $img.digest }}
{{- else }}
{{- printf "%s:%s" $img.repository $img.tag }}
{{- end }}
{{- end }}

{{/*
The Redis URL the chart itself keeps in its Secret: the development Redis, or redis.url.
Empty when the URL comes from redis.existingSecret.
*/}}
{{- define "sessiond.managedRedisUrl" -}}
{{- if .Values.devRedis.enabled }}
{{- printf "redis://%s:6379/0" (include "sessiond.devRedis.fullname" .) }}
{{- else if not .Values.redis.existingSecret }}
{{- .Values.redis.url }}
{{- end }}
{{- end }}

{{/* Whether the chart manages a Secret at all. */}}
{{- define "sessiond.managedSecret" -}}
{{- if or (include "sessiond.managedRedisUrl" .) (and .Values.apiKeys.value (not .Values.apiKeys.existingSecret)) }}true{{ end }}
{{- end }}

{{/*
Cross-field checks that values.schema.json cannot express; each fails the install with one
line naming the values involved.
*/}}
{{- define "sessiond.validate" -}}
{{- if and .Values.devRedis.enabled .Values.redis.existingSecret }}
{{- fail "sessiond: devRedis.enabled and redis.existingSecret are both set; choose one source for the Redis URL" }}
{{- end }}
{{- if and .Values.devRedis.enabled (ne .Values.redis.mode "standalone") }}
{{- fail "sessiond: devRedis is a standalone Redis; redis.mode must be standalone when devRedis.enabled" }}
{{- end }}
{{- if not (or .Values.devRedis.enabled .Values.redis.existingSecret .Values.redis.url) }}
{{- fail "sessiond: no Redis configured; set redis.url, redis.existingSecret or (development only) devRedis.enabled=true — without Redis every pod would keep its own sessions" }}
{{- end }}
{{- if and (eq .Values.redis.mode "standalone") (not .Values.redis.existingSecret) (not .Values.devRedis.enabled) (contains "," .Values.redis.url) }}
{{- fail "sessiond: redis.url holds several URLs; set redis.mode to cluster or sentinel (standalone takes one URL)" }}
{{- end }}
{{- if and (eq .Values.redis.mode "sentinel") (not .Values.redis.sentinelMaster) }}
{{- fail "sessiond: redis.mode=sentinel needs redis.sentinelMaster" }}
{{- end }}
{{- if gt (int64 .Values.config.defaultExpiresIn) (int64 .Values.config.maxExpiresIn) }}
{{- fail "sessiond: config.defaultExpiresIn must not exceed config.maxExpiresIn" }}
{{- end }}
{{- $drain := add (int64 .Values.lifecycle.preStopSleepSeconds) (div (add (int64 .Values.config.shutdownTimeoutMs) 999) 1000) }}
{{- if le (int64 .Values.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "sessiond: terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds + config.shutdownTimeoutMs/1000 (%d), or pods are killed mid-drain" (int64 .Values.terminationGracePeriodSeconds) $drain) }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $min := .Values.podDisruptionBudget.minAvailable }}
{{- $floor := ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled }}
{{- if and (not (kindIs "string" $min)) (ge (int64 $min) (int64 $floor)) }}
{{- fail (printf "sessiond: podDisruptionBudget.minAvailable (%d) must be below the replica count (%d), or no node can ever be drained" (int64 $min) (int64 $floor)) }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int64 .Values.autoscaling.minReplicas) (int64 .Values.autoscaling.maxReplicas)) }}
{{- fail "sessiond: autoscaling.minReplicas must not exceed autoscaling.maxReplicas" }}
{{- end }}
{{- $sm := .Values.metrics.serviceMonitor }}
{{- if $sm.enabled }}
{{- if and .Values.config.metricsAuth (not $sm.authorization.secretName) }}
{{- fail "sessiond: config.metricsAuth=true makes GET /metrics need an API key; set metrics.serviceMonitor.authorization.secretName (a Secret holding one caller's secret), or Prometheus gets 401" }}
{{- end }}
{{- $interval := include "sessiond.durationMs" $sm.interval | int64 }}
{{- if gt (include "sessiond.durationMs" $sm.scrapeTimeout | int64) $interval }}
{{- fail (printf "sessiond: metrics.serviceMonitor.scrapeTimeout (%s) must not exceed metrics.serviceMonitor.interval (%s)" $sm.scrapeTimeout $sm.interval) }}
{{- end }}
{{- if and .Values.metrics.prometheusRule.enabled (lt (include "sessiond.durationMs" .Values.metrics.prometheusRule.rateWindow | int64) (mul 4 $interval)) }}
{{- fail (printf "sessiond: metrics.prometheusRule.rateWindow (%s) must span at least 4 scrape intervals (metrics.serviceMonitor.interval %s), or rate() has too few samples and the alerts stay silent" .Values.metrics.prometheusRule.rateWindow $sm.interval) }}
{{- end }}
{{- end }}
{{- end }}

{{/* A Prometheus duration ("1m30s", "500ms") in milliseconds. */}}
{{- define "sessiond.durationMs" -}}
{{- $units := dict "ms" 1 "s" 1000 "m" 60000 "h" 3600000 "d" 86400000 "w" 604800000 "y" 31536000000 }}
{{- $total := 0 }}
{{- range regexFindAll "[0-9]+(ms|[smhdwy])" (toString .) -1 }}
{{- $total = add $total (mul (regexFind "^[0-9]+" . | int64) (get $units (regexReplaceAll "^[0-9]+" . ""))) }}
{{- end }}
{{- $total }}
{{- end }}
