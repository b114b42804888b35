{{/* Chart name, overridable. */}}
{{- define "vpn-pbr-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full resource name: <release>-<chart>, or <release> when it already contains the chart name. */}}
{{- define "vpn-pbr-operator.fullname" -}}
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

{{- define "vpn-pbr-operator.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object. */}}
{{- define "vpn-pbr-operator.labels" -}}
helm.sh/chart: {{ include "vpn-pbr-operator.chart" . }}
{{ include "vpn-pbr-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ (default .Chart.AppVersion .Values.image.tag) | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/component: controller
app.kubernetes.io/part-of: vpn-pbr-operator
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels selecting the operator pods (immutable in the Deployment: never add to these). */}}
{{- define "vpn-pbr-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "vpn-pbr-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "vpn-pbr-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "vpn-pbr-operator.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create=false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "vpn-pbr-operator.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The labels of an alert: its severity and monitoring.prometheusRule.alertLabels. */}}
{{- define "vpn-pbr-operator.alertLabels" -}}
severity: {{ .severity }}
{{- with .extra }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Checks across values that the JSON schema cannot express clearly; fail with a message. */}}
{{- define "vpn-pbr-operator.validate" -}}
{{- if and (gt (int .Values.replicaCount) 1) (not .Values.leaderElection.enabled) }}
{{- fail "replicaCount > 1 needs leaderElection.enabled=true: without a lease every replica would reconcile and race on the cloud API" }}
{{- end }}
{{- if and .Values.routeSecrets.enabled (not .Values.secretNamespaces) }}
{{- fail "routeSecrets.enabled=true needs secretNamespaces: the namespaces whose Secrets routes may use (the operator has no cluster-wide Secret access; see docs/migration.md)" }}
{{- end }}
{{- if and .Values.credentials.existingSecret .Values.credentials.rrsa.enabled }}
{{- fail "set either credentials.existingSecret or credentials.rrsa.enabled, not both" }}
{{- end }}
{{- if and .Values.monitoring.prometheusRule.enabled (not .Values.monitoring.runbookBaseUrl) }}
{{- fail "monitoring.prometheusRule.enabled=true needs monitoring.runbookBaseUrl: every alert links to its runbook, <runbookBaseUrl>/docs/runbooks.md#<alert>" }}
{{- end }}
{{- if .Values.credentials.rrsa.enabled }}
{{- if not .Values.credentials.rrsa.roleArn }}
{{- fail "credentials.rrsa.enabled=true needs credentials.rrsa.roleArn" }}
{{- end }}
{{- if not .Values.credentials.rrsa.oidcProviderArn }}
{{- fail "credentials.rrsa.enabled=true needs credentials.rrsa.oidcProviderArn" }}
{{- end }}
{{- end }}
{{- end }}
