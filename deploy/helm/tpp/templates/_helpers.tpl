{{/* Names and labels shared by every template. */}}

{{- define "tpp.labels" -}}
app.kubernetes.io/part-of: tpp
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* The Strimzi Kafka cluster's name. */}}
{{- define "tpp.kafkaName" -}}
{{- .Values.kafka.strimzi.name | default (printf "%s-kafka" .Release.Name) | trunc 40 | trimSuffix "-" -}}
{{- end }}

{{/* A service's PostgreSQL cluster: (list $ "registry"). */}}
{{- define "tpp.pgName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s-db" $root.Release.Name (index . 1) | trunc 40 | trimSuffix "-" -}}
{{- end }}

{{/* A service's Deployment, Service and pods: (list $ "registry"). */}}
{{- define "tpp.serviceName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" $root.Release.Name (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end }}

{{- define "tpp.selector" -}}
{{- $root := index . 0 -}}
app.kubernetes.io/name: {{ index . 1 }}
app.kubernetes.io/instance: {{ $root.Release.Name }}
{{- end }}

{{- define "tpp.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end }}

{{- define "tpp.enrollmentKeys" -}}
{{- .Values.enrollment.keysSecret | default (printf "%s-enrollment-keys" .Release.Name) -}}
{{- end }}

{{/* A service's settings: the defaults with its own entry over them: (list $ "registry"). */}}
{{- define "tpp.settings" -}}
{{- $root := index . 0 -}}
{{- $own := index $root.Values.services (index . 1) | default dict -}}
{{- toYaml (mergeOverwrite (deepCopy $root.Values.defaults) (deepCopy $own)) -}}
{{- end }}

{{/* A service has a pooler in front of its database. */}}
{{- define "tpp.pooled" -}}
{{- $root := index . 0 -}}
{{- $pooler := index $root.Values.postgres.pooler (index . 1) | default dict -}}
{{- if $pooler.enabled }}true{{ end -}}
{{- end }}

{{/*
The environment a service's process (or its migration Job) needs to reach its database:
(list $ "registry" direct), direct=true bypasses the pooler (migrations).
*/}}
{{- define "tpp.databaseEnv" -}}
{{- $root := index . 0 -}}
{{- $svc := index . 1 -}}
{{- $direct := index . 2 -}}
{{- $pg := include "tpp.pgName" (list $root $svc) -}}
{{- $host := printf "%s-rw" $pg -}}
{{- if and (not $direct) (include "tpp.pooled" (list $root $svc)) }}{{ $host = printf "%s-pooler" $pg }}{{ end -}}
- name: TPP_DB_USER
  valueFrom: {secretKeyRef: {name: {{ $pg }}-app, key: username}}
- name: TPP_DB_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $pg }}-app, key: password}}
- name: TPP_{{ upper $svc }}_DATABASE_URL
  value: postgresql+asyncpg://$(TPP_DB_USER):$(TPP_DB_PASSWORD)@{{ $host }}:5432/{{ $svc }}
{{- end }}

{{- define "tpp.enrollmentKeysEnv" -}}
- name: TPP_ENROLLMENT_PERSONAL_DATA_KEYS
  valueFrom: {secretKeyRef: {name: {{ include "tpp.enrollmentKeys" . }}, key: personal-data-keys}}
- name: TPP_ENROLLMENT_PASSPORT_HASH_KEY
  valueFrom: {secretKeyRef: {name: {{ include "tpp.enrollmentKeys" . }}, key: passport-hash-key}}
{{- end }}

{{/* How a service reaches Kafka, as itself: (list $ "registry"). */}}
{{- define "tpp.kafkaEnv" -}}
{{- $root := index . 0 -}}
{{- $svc := index . 1 -}}
{{- if eq $root.Values.kafka.mode "strimzi" }}
- name: TPP_KAFKA_BOOTSTRAP
  value: {{ include "tpp.kafkaName" $root }}-kafka-bootstrap:9093
- name: TPP_KAFKA_SECURITY_PROTOCOL
  value: SASL_SSL
- name: TPP_KAFKA_SASL_MECHANISM
  value: SCRAM-SHA-512
- name: TPP_KAFKA_SSL_CAFILE
  value: /etc/tpp/kafka-ca/ca.crt
- name: TPP_{{ upper $svc }}_KAFKA_USERNAME
  value: {{ $svc }}
- name: TPP_{{ upper $svc }}_KAFKA_PASSWORD
  valueFrom: {secretKeyRef: {name: {{ $svc }}, key: password}}
{{- else }}
{{- $ext := $root.Values.kafka.external }}
- name: TPP_KAFKA_BOOTSTRAP
  value: {{ required "kafka.external.bootstrap is required with kafka.mode=external" $ext.bootstrap | quote }}
- name: TPP_KAFKA_SECURITY_PROTOCOL
  value: {{ $ext.securityProtocol }}
- name: TPP_KAFKA_SASL_MECHANISM
  value: {{ $ext.saslMechanism }}
{{- if $ext.caSecret }}
- name: TPP_KAFKA_SSL_CAFILE
  value: /etc/tpp/kafka-ca/ca.crt
{{- end }}
- name: TPP_{{ upper $svc }}_KAFKA_USERNAME
  value: {{ index $ext.usernames $svc | default $svc | quote }}
- name: TPP_{{ upper $svc }}_KAFKA_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ required "kafka.external.credentialsSecret is required with kafka.mode=external" $ext.credentialsSecret }}
      key: {{ $svc }}-password
{{- end }}
{{- end }}

{{/* The Secret holding the brokers' CA, if any. */}}
{{- define "tpp.kafkaCaSecret" -}}
{{- if eq .Values.kafka.mode "strimzi" -}}
{{ include "tpp.kafkaName" . }}-cluster-ca-cert
{{- else -}}
{{ .Values.kafka.external.caSecret }}
{{- end -}}
{{- end }}
