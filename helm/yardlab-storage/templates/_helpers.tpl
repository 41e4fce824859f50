{{/*
The chart name, or nameOverride.
*/}}
{{- define "yardlab-storage.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The release's full name (fullnameOverride, or "<release>-<chart>" unless the release name
already contains the chart name).  Capped at 56 characters so "-shared"/"-public" fit in 63.
*/}}
{{- define "yardlab-storage.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 56 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 56 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, for the helm.sh/chart label.
*/}}
{{- define "yardlab-storage.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels every object carries.
*/}}
{{- define "yardlab-storage.labels" -}}
helm.sh/chart: {{ include "yardlab-storage.chart" . }}
{{ include "yardlab-storage.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: yardlab
{{- end }}

{{/*
Selector labels.
*/}}
{{- define "yardlab-storage.selectorLabels" -}}
app.kubernetes.io/name: {{ include "yardlab-storage.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
The claim name of one volume: (list $ "shared") -> "<fullname>-shared".
*/}}
{{- define "yardlab-storage.claimName" -}}
{{- $root := index . 0 }}
{{- printf "%s-%s" (include "yardlab-storage.fullname" $root) (index . 1) }}
{{- end }}

{{/*
The NFS PersistentVolume name of one volume.  Volumes are cluster-wide, so the namespace
is part of the name: (list $ "public") -> "<namespace>-<fullname>-public".
*/}}
{{- define "yardlab-storage.nfsVolumeName" -}}
{{- $root := index . 0 }}
{{- $namespace := $root.Release.Namespace | default "default" }}
{{- printf "%s-%s-%s" $namespace (include "yardlab-storage.fullname" $root) (index . 1) | trunc 253 | trimSuffix "-" }}
{{- end }}
