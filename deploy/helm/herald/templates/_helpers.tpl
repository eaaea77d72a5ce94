{{- define "herald.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "herald.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains (include "herald.name" .) .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name (include "herald.name" .) | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "herald.selectorLabels" -}}
app.kubernetes.io/name: {{ include "herald.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "herald.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "herald.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: gateway
{{- end }}

{{/* The Secret holding HERALD_JWT_SECRET and HERALD_API_KEYS. */}}
{{- define "herald.secretName" -}}
{{- if .Values.secret.existingSecret }}{{ .Values.secret.existingSecret }}{{ else }}{{ include "herald.fullname" . }}{{ end }}
{{- end }}

{{- define "herald.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default (printf "v%s" .Chart.AppVersion) .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "herald.cluster" -}}
{{- if eq .Values.mode "cluster" }}true{{ end }}
{{- end }}

{{/* Checks that fail the render with a message instead of a broken release. */}}
{{- define "herald.validate" -}}
{{- if not (has .Values.mode (list "single" "cluster")) }}
{{- fail (printf "mode must be single or cluster, not %q" .Values.mode) }}
{{- end }}
{{- if and (not .Values.secret.existingSecret) (not .Values.secret.create) }}
{{- fail "set secret.existingSecret (a Secret with HERALD_JWT_SECRET and HERALD_API_KEYS), or secret.create=true with secret.jwtSecret and secret.apiKeys" }}
{{- end }}
{{- if and .Values.secret.create (or (not .Values.secret.jwtSecret) (not .Values.secret.apiKeys)) }}
{{- fail "secret.create=true needs secret.jwtSecret and secret.apiKeys" }}
{{- end }}
{{- if and (eq .Values.mode "cluster") (lt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount must be at least 1" }}
{{- end }}
{{- end }}
