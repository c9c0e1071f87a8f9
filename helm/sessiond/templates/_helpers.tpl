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

{{/*
The version the release runs: image.tag when set, else the chart's appVersion (a digest-only
image is still labelled with the appVersion). As a label value: at most 63 characters,
alphanumeric at both ends.
*/}}
{{- define "sessiond.version" -}}
{{- $v := .Values.image.tag | default .Chart.AppVersion | trunc 63 }}
{{- regexReplaceAll "^[^A-Za-z0-9]+|[^A-Za-z0-9]+$" $v "" }}
{{- end }}

{{/*
Labels of every object: the chart's, then commonLabels (the schema keeps those from
overriding the chart's). Built as a map, so that no key can appear twice.
*/}}
{{- define "sessiond.labels" -}}
{{- $labels := dict "helm.sh/chart" (include "sessiond.chart" .) "app.kubernetes.io/version" (include "sessiond.version" .) "app.kubernetes.io/managed-by" .Release.Service "app.kubernetes.io/part-of" "sessiond" }}
{{- $labels = merge $labels (include "sessiond.selectorLabels" . | fromYaml) (.Values.commonLabels | default dict) }}
{{- toYaml $labels }}
{{- end }}

{{/* The `helm test` pod: same release, component "test"; the NetworkPolicy admits it. */}}
{{- define "sessiond.testLabels" -}}
{{- $labels := dict "helm.sh/chart" (include "sessiond.chart" .) "app.kubernetes.io/managed-by" .Release.Service "app.kubernetes.io/part-of" "sessiond" }}
{{- $labels = merge $labels (dict "app.kubernetes.io/name" (include "sessiond.name" .) "app.kubernetes.io/instance" .Release.Name "app.kubernetes.io/component" "test") }}
{{- toYaml (merge $labels (.Values.commonLabels | default dict)) }}
{{- end }}

{{/* sessiond.labels plus more (podLabels, a ServiceMonitor's labels): the chart's win. */}}
{{- define "sessiond.labelsWith" -}}
{{- $ctx := index . 0 }}
{{- toYaml (merge (include "sessiond.labels" $ctx | fromYaml) (index . 1 | default dict)) }}
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
{{- $labels := dict "helm.sh/chart" (include "sessiond.chart" .) "app.kubernetes.io/managed-by" .Release.Service "app.kubernetes.io/part-of" "sessiond" }}
{{- toYaml (merge $labels (include "sessiond.devRedis.selectorLabels" . | fromYaml) (.Values.commonLabels | default dict)) }}
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
{{- $sources := list }}
{{- if .Values.redis.url }}{{ $sources = append $sources "redis.url" }}{{ end }}
{{- if .Values.redis.existingSecret }}{{ $sources = append $sources "redis.existingSecret" }}{{ end }}
{{- if .Values.devRedis.enabled }}{{ $sources = append $sources "devRedis.enabled" }}{{ end }}
{{- if gt (len $sources) 1 }}
{{- fail (printf "sessiond: %s are all set; choose one source for the Redis URL" (join " and " $sources)) }}
{{- end }}
{{- if and .Values.devRedis.enabled (ne .Values.redis.mode "standalone") }}
{{- fail "sessiond: devRedis is a standalone Redis; redis.mode must be standalone when devRedis.enabled" }}
{{- end }}
{{- if not (or .Values.devRedis.enabled .Values.redis.existingSecret .Values.redis.url) }}
{{- fail "sessiond: no Redis configured; set redis.url, redis.existingSecret or (development only) devRedis.enabled=true — the chart has no default, since a guessed address leaves every pod unready" }}
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
{{- /*
The shutdown budget (README, "Shutdown sequence"): the preStop sleep, then SIGTERM, after which
sessiond drains idle connections for drainMs and exits at the latest after shutdownTimeoutMs;
the kubelet's SIGKILL comes terminationGracePeriodSeconds after the preStop hook started.
*/}}
{{- if ge (int64 .Values.config.drainMs) (int64 .Values.config.shutdownTimeoutMs) }}
{{- fail (printf "sessiond: config.drainMs (%d) must be shorter than config.shutdownTimeoutMs (%d): requests answered during the drain need time to finish (sessiond refuses it too)" (int64 .Values.config.drainMs) (int64 .Values.config.shutdownTimeoutMs)) }}
{{- end }}
{{- $drain := add (int64 .Values.lifecycle.preStopSleepSeconds) (div (add (int64 .Values.config.shutdownTimeoutMs) 999) 1000) }}
{{- if le (int64 .Values.terminationGracePeriodSeconds) $drain }}
{{- fail (printf "sessiond: terminationGracePeriodSeconds (%d) must exceed lifecycle.preStopSleepSeconds + config.shutdownTimeoutMs/1000 (%d), or pods are killed mid-drain" (int64 .Values.terminationGracePeriodSeconds) $drain) }}
{{- end }}
{{- if and .Values.config.metricsAuth (not (or .Values.apiKeys.value .Values.apiKeys.existingSecret)) }}
{{- fail "sessiond: config.metricsAuth=true needs API keys (apiKeys.value or apiKeys.existingSecret): sessiond refuses to start with /metrics open to everyone" }}
{{- end }}
{{- if .Values.podDisruptionBudget.enabled }}
{{- $pdb := .Values.podDisruptionBudget }}
{{- $min := $pdb.minAvailable }}
{{- $floor := int64 (ternary .Values.autoscaling.minReplicas .Values.replicaCount .Values.autoscaling.enabled) }}
{{- if ne (toString $min) "" }}
{{- if kindIs "string" $min }}
{{- /* Kubernetes rounds a minAvailable percentage up. */}}
{{- $pods := div (add (mul (trimSuffix "%" $min | int64) $floor) 99) 100 }}
{{- if ge $pods $floor }}
{{- fail (printf "sessiond: podDisruptionBudget.minAvailable (%s of %d pods, rounded up: %d) must be below the replica count (%d), or no node can ever be drained" $min $floor $pods $floor) }}
{{- end }}
{{- else if ge (int64 $min) $floor }}
{{- fail (printf "sessiond: podDisruptionBudget.minAvailable (%d) must be below the replica count (%d), or no node can ever be drained" (int64 $min) $floor) }}
{{- end }}
{{- else if or (eq (toString $pdb.maxUnavailable) "0") (eq (toString $pdb.maxUnavailable) "0%") (eq (toString $pdb.maxUnavailable) "") }}
{{- fail (printf "sessiond: podDisruptionBudget.maxUnavailable (%v) lets no pod be evicted, so no node can ever be drained; use 1 (or a minAvailable below the replica count)" $pdb.maxUnavailable) }}
{{- end }}
{{- end }}
{{- if and (eq .Values.updateStrategy.type "RollingUpdate") .Values.updateStrategy.rollingUpdate }}
{{- $ru := .Values.updateStrategy.rollingUpdate }}
{{- if and (has (toString ($ru.maxUnavailable | default 0)) (list "0" "0%")) (has (toString ($ru.maxSurge | default 0)) (list "0" "0%")) }}
{{- fail "sessiond: updateStrategy.rollingUpdate.maxUnavailable and maxSurge are both 0; the API server refuses such a Deployment" }}
{{- end }}
{{- end }}
{{- if .Values.apiKeys.value }}
{{- $names := dict }}
{{- $digests := dict }}
{{- range $i, $entry := splitList "," .Values.apiKeys.value }}
{{- $entry = trim $entry }}
{{- $n := add1 $i }}
{{- if not (contains ":" $entry) }}
{{- fail (printf "sessiond: apiKeys.value entry %d is not name:secret or name:sha256:<hex>" $n) }}
{{- end }}
{{- $name := trim (regexReplaceAll ":.*$" $entry "") }}
{{- $secret := regexReplaceAll "^[^:]*:" $entry "" }}
{{- if not (regexMatch "^[!-~]+$" $name) }}
{{- fail (printf "sessiond: apiKeys.value entry %d needs a name of visible ASCII characters before the first ':'" $n) }}
{{- end }}
{{- if hasPrefix "sha256:" $secret }}
{{- if not (regexMatch "^[0-9A-Fa-f]{64}$" (trim (trimPrefix "sha256:" $secret))) }}
{{- fail (printf "sessiond: apiKeys.value entry %d (%s): sha256: must be followed by 64 hex digits" $n $name) }}
{{- end }}
{{- else if eq $secret "" }}
{{- fail (printf "sessiond: apiKeys.value entry %d (%s) has an empty secret" $n $name) }}
{{- end }}
{{- if hasKey $names $name }}
{{- fail (printf "sessiond: apiKeys.value names %s twice" $name) }}
{{- end }}
{{- $_ := set $names $name true }}
{{- /* A secret and the sha256: of the same secret are the same key. */}}
{{- $digest := ternary (lower (trim (trimPrefix "sha256:" $secret))) (sha256sum $secret) (hasPrefix "sha256:" $secret) }}
{{- if hasKey $digests $digest }}
{{- fail (printf "sessiond: apiKeys.value entries %v and %d (%s) have the same secret; each caller needs its own" (get $digests $digest) $n $name) }}
{{- end }}
{{- $_ := set $digests $digest $n }}
{{- end }}
{{- end }}
{{- $managed := keys (include (print .Template.BasePath "/configmap.yaml") . | fromYaml).data }}
{{- $managed = append $managed "SESSIOND_REDIS_URL" }}
{{- if or .Values.apiKeys.value .Values.apiKeys.existingSecret }}{{ $managed = append $managed "SESSIOND_API_KEYS" }}{{ end }}
{{- range .Values.extraEnv }}
{{- if has .name $managed }}
{{- fail (printf "sessiond: extraEnv sets %s, which the chart sets from its values; set it there (values.schema.json checks it)" .name) }}
{{- end }}
{{- end }}
{{- if and .Values.httpRoute.enabled (not .Values.httpRoute.parentRefs) }}
{{- fail "sessiond: httpRoute.enabled needs httpRoute.parentRefs (the Gateway to attach to)" }}
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
