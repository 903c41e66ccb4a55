{{/* The objects' names: the release name, plus the chart's when the release does not say it. */}}
{{- define "alert-engine.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "alert-engine.labels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selects one component's pods: worker or redis. */}}
{{- define "alert-engine.selector" -}}
app.kubernetes.io/name: {{ .context.Chart.Name }}
app.kubernetes.io/instance: {{ .context.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "alert-engine.secretName" -}}
{{- .Values.secrets.existingSecret | default (printf "%s-secrets" (include "alert-engine.fullname" .)) -}}
{{- end -}}

{{- define "alert-engine.rulesConfigMap" -}}
{{- .Values.rules.existingConfigMap | default (printf "%s-rules" (include "alert-engine.fullname" .)) -}}
{{- end -}}

{{- define "alert-engine.routingConfigMap" -}}
{{- .Values.routing.existingConfigMap | default (printf "%s-routing" (include "alert-engine.fullname" .)) -}}
{{- end -}}

{{- define "alert-engine.hasRouting" -}}
{{- if or .Values.routing.file .Values.routing.existingConfigMap -}}true{{- end -}}
{{- end -}}

{{- define "alert-engine.redisUrl" -}}
{{- if .Values.redis.enabled -}}
{{- $name := printf "%s-redis" (include "alert-engine.fullname" .) -}}
{{- printf "redis://%s-0.%s:6379/0" $name $name -}}
{{- else -}}
{{- required "redis.url is required when redis.enabled is false" .Values.redis.url -}}
{{- end -}}
{{- end -}}

{{/* The secrets' environment variable names, by values key: the settings the worker reads. */}}
{{- define "alert-engine.secretKeys" -}}
slackBotToken: ALERT_ENGINE_SLACK_BOT_TOKEN
slackSigningSecret: ALERT_ENGINE_SLACK_SIGNING_SECRET
sendgridApiKey: ALERT_ENGINE_SENDGRID_API_KEY
followupTokenSecret: ALERT_ENGINE_FOLLOWUP_TOKEN_SECRET
metricsToken: ALERT_ENGINE_METRICS_TOKEN
signinSessionSecret: ALERT_ENGINE_SIGNIN_SESSION_SECRET
databaseUrl: ALERT_ENGINE_DATABASE_URL
{{- end -}}

{{/* The chart's PostgreSQL: its StatefulSet and headless Service, and the Secret of its password. */}}
{{- define "alert-engine.postgresqlName" -}}
{{- printf "%s-postgresql" (include "alert-engine.fullname" .) -}}
{{- end -}}

{{- define "alert-engine.postgresqlSecret" -}}
{{- .Values.postgresql.auth.existingSecret | default (include "alert-engine.postgresqlName" .) -}}
{{- end -}}

{{/* The workers' URL of the chart's PostgreSQL; the password comes from PGPASSWORD. */}}
{{- define "alert-engine.postgresqlUrl" -}}
{{- $name := include "alert-engine.postgresqlName" . -}}
{{- printf "postgresql://%s@%s-0.%s:5432/%s" .Values.postgresql.user $name $name .Values.postgresql.database -}}
{{- end -}}
