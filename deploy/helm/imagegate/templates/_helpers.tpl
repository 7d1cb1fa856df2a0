{{/* Labels on every object: what the kustomize base sets, plus Helm's own. */}}
{{- define "imagegate.labels" -}}
app.kubernetes.io/part-of: imagegate
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The gateway's pods. */}}
{{- define "imagegate.selector" -}}
app.kubernetes.io/name: imagegate
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "imagegate.image" -}}
{{- if .Values.image.digest -}}
{{ printf "%s:%s@%s" .Values.image.repository .Values.image.tag .Values.image.digest }}
{{- else -}}
{{ printf "%s:%s" .Values.image.repository .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The Service's name as the API server dials it. */}}
{{- define "imagegate.host" -}}
{{ printf "imagegate.%s.svc" .Release.Namespace }}
{{- end -}}

{{- define "imagegate.namespaceSelector" -}}
{{- if .Values.webhooks.namespaceSelector -}}
{{ toYaml .Values.webhooks.namespaceSelector }}
{{- else -}}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: [{{ prepend (.Values.webhooks.excludedNamespaces | default list) .Release.Namespace | uniq | join ", " }}]
{{- end -}}
{{- end -}}

{{/* "true" when config sets defaultStorageClass, at the top or in a namespace. */}}
{{- define "imagegate.defaultStorageClass" -}}
{{- $on := false -}}
{{- range $part := prepend (values (.Values.config.namespaces | default dict)) .Values.config -}}
{{- if $part.defaultStorageClass -}}
{{- $on = true -}}
{{- end -}}
{{- end -}}
{{- if $on -}}true{{- end -}}
{{- end -}}

{{/* The webhooks' caBundle: the CA's PEM, base64; none with cert-manager (its injector). */}}
{{- define "imagegate.caBundle" -}}
{{- if eq .Values.tls.mode "values" -}}
{{ .Values.tls.ca | b64enc }}
{{- else if eq .Values.tls.mode "existing" -}}
{{ required "tls.caBundle (the PEM of the CA that signed the serving certificate) is required with tls.mode existing" .Values.tls.caBundle | b64enc }}
{{- end -}}
{{- end -}}

{{/* "true" when registry facts are on: registryFacts.enabled, or config asks for them. */}}
{{- define "imagegate.registryFacts" -}}
{{- $on := or .Values.registryFacts.enabled (eq .Values.bundle.source "oci") -}}
{{- range $part := prepend (values (.Values.config.namespaces | default dict)) .Values.config -}}
{{- if or (has (toString $part.pinDigests) (list "pods" "all")) (gt (len ($part.signatures | default list)) 0) -}}
{{- $on = true -}}
{{- end -}}
{{- end -}}
{{- if $on -}}true{{- end -}}
{{- end -}}

{{- define "imagegate.checkValues" -}}
{{- if not (has .Values.tls.mode (list "values" "existing" "cert-manager")) -}}
{{ fail (printf "tls.mode must be values, existing or cert-manager, not %q" .Values.tls.mode) }}
{{- end -}}
{{- if and (eq .Values.tls.mode "values") (or (not .Values.tls.cert) (not .Values.tls.key) (not .Values.tls.ca)) -}}
{{ fail "tls.cert, tls.key and tls.ca are required with tls.mode values (imagegate certs writes them)" }}
{{- end -}}
{{- if not (has .Values.webhooks.failurePolicy (list "Fail" "Ignore")) -}}
{{ fail "webhooks.failurePolicy must be Fail or Ignore" }}
{{- end -}}
{{- if or (lt (int .Values.webhooks.timeoutSeconds) 1) (gt (int .Values.webhooks.timeoutSeconds) 30) -}}
{{ fail "webhooks.timeoutSeconds must be from 1 to 30" }}
{{- end -}}
{{- if include "imagegate.registryFacts" . -}}
{{- if gt (add (int .Values.registryFacts.budgetMs) 2000) (mul (int .Values.webhooks.timeoutSeconds) 1000) -}}
{{ fail (printf "registryFacts.budgetMs (%d) must leave 2 s of webhooks.timeoutSeconds (%d s)" (int .Values.registryFacts.budgetMs) (int .Values.webhooks.timeoutSeconds)) }}
{{- end -}}
{{- if gt (int .Values.registryFacts.timeoutMs) (int .Values.registryFacts.budgetMs) -}}
{{ fail "registryFacts.timeoutMs must not be above registryFacts.budgetMs" }}
{{- end -}}
{{- end -}}
{{- if not (has .Values.bundle.source (list "configMap" "oci" "http")) -}}
{{ fail (printf "bundle.source must be configMap, oci or http, not %q" .Values.bundle.source) }}
{{- end -}}
{{- if and (eq .Values.bundle.source "oci") (not (hasPrefix "oci://" .Values.bundle.oci.reference)) -}}
{{ fail "bundle.source oci needs bundle.oci.reference (oci://REGISTRY/REPO:TAG)" }}
{{- end -}}
{{- if and (eq .Values.bundle.source "http") (not (hasPrefix "https://" .Values.bundle.http.url)) -}}
{{ fail "bundle.source http needs bundle.http.url (https://...)" }}
{{- end -}}
{{- if and .Values.collector.url (not (or .Values.collector.decisionLogs .Values.collector.status)) -}}
{{ fail "collector.url: turn on collector.decisionLogs or collector.status" }}
{{- end -}}
{{- if and .Values.bundle.create (not .Values.bundle.archiveBase64) -}}
{{ fail "bundle.create needs bundle.archiveBase64 (base64 of the bundle .tar.gz)" }}
{{- end -}}
{{- end -}}

{{/* Registry facts' flags, mounts and volumes: the gateway's and the audit's. */}}
{{- define "imagegate.registryArgs" -}}
{{- if include "imagegate.registryFacts" . }}
{{- if .Values.registryFacts.credentialsSecret }}
- --registry-credentials=/etc/imagegate/registry/credentials/.dockerconfigjson
{{- end }}
{{- if .Values.registryFacts.caConfigMap }}
- --registry-ca=/etc/imagegate/registry/ca/ca.crt
{{- end }}
- --registry-budget-ms={{ .Values.registryFacts.budgetMs }}
- --registry-timeout-ms={{ .Values.registryFacts.timeoutMs }}
{{- end }}
{{- end -}}

{{- define "imagegate.registryMounts" -}}
{{- if include "imagegate.registryFacts" . }}
{{- if .Values.registryFacts.credentialsSecret }}
- name: registry-credentials
  mountPath: /etc/imagegate/registry/credentials
  readOnly: true
{{- end }}
{{- if .Values.registryFacts.caConfigMap }}
- name: registry-ca
  mountPath: /etc/imagegate/registry/ca
  readOnly: true
{{- end }}
{{- if .Values.registryFacts.keysConfigMap }}
- name: signature-keys
  mountPath: /etc/imagegate/keys
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "imagegate.registryVolumes" -}}
{{- if include "imagegate.registryFacts" . }}
{{- with .Values.registryFacts.credentialsSecret }}
- name: registry-credentials
  secret:
    secretName: {{ . }}
    defaultMode: 288 # 0440
    items:
      - key: .dockerconfigjson
        path: .dockerconfigjson
{{- end }}
{{- with .Values.registryFacts.caConfigMap }}
- name: registry-ca
  configMap:
    name: {{ . }}
{{- end }}
{{- with .Values.registryFacts.keysConfigMap }}
- name: signature-keys
  configMap:
    name: {{ . }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The --bundle value: the mounted ConfigMap, or a remote source. */}}
{{- define "imagegate.bundleFlag" -}}
{{- if eq .Values.bundle.source "oci" -}}
{{ .Values.bundle.oci.reference }}
{{- else if eq .Values.bundle.source "http" -}}
{{ .Values.bundle.http.url }}
{{- else -}}
/etc/imagegate/bundle
{{- end -}}
{{- end -}}

{{/* A remote bundle source's flags, mounts and volumes (deploy/components/bundle-oci, bundle-service). */}}
{{- define "imagegate.bundleArgs" -}}
{{- if ne .Values.bundle.source "configMap" }}
- --bundle-persist-dir=/var/lib/imagegate/bundles
{{- end }}
{{- if eq .Values.bundle.source "oci" }}
- --bundle-poll-interval-ms={{ .Values.bundle.pollIntervalMs }}
{{- with .Values.bundle.oci.cosignKey }}
- --bundle-cosign-key=/etc/imagegate/keys/{{ . }}
{{- end }}
{{- else if eq .Values.bundle.source "http" }}
{{- if .Values.bundle.http.tokenSecret }}
- --bundle-token-file=/etc/imagegate/bundle-token/token
{{- end }}
{{- if .Values.bundle.http.caConfigMap }}
- --bundle-ca=/etc/imagegate/bundle-ca/ca.crt
{{- end }}
- --bundle-long-poll-s={{ .Values.bundle.http.longPollSeconds }}
{{- if ne (int .Values.bundle.pollIntervalMs) 60000 }}
- --bundle-poll-interval-ms={{ .Values.bundle.pollIntervalMs }}
{{- end }}
{{- end }}
{{- end -}}

{{- define "imagegate.bundleMounts" -}}
{{- if ne .Values.bundle.source "configMap" }}
- name: bundle-cache
  mountPath: /var/lib/imagegate/bundles
{{- end }}
{{- if eq .Values.bundle.source "http" }}
{{- if .Values.bundle.http.tokenSecret }}
- name: bundle-token
  mountPath: /etc/imagegate/bundle-token
  readOnly: true
{{- end }}
{{- if .Values.bundle.http.caConfigMap }}
- name: bundle-ca
  mountPath: /etc/imagegate/bundle-ca
  readOnly: true
{{- end }}
{{- end }}
{{- end -}}

{{- define "imagegate.bundleVolumes" -}}
{{- if ne .Values.bundle.source "configMap" }}
- name: bundle-cache
  emptyDir:
    sizeLimit: {{ .Values.bundle.persistSizeLimit }}
{{- end }}
{{- if eq .Values.bundle.source "http" }}
{{- with .Values.bundle.http.tokenSecret }}
- name: bundle-token
  secret:
    secretName: {{ . }}
    defaultMode: 288 # 0440
    optional: true
{{- end }}
{{- with .Values.bundle.http.caConfigMap }}
- name: bundle-ca
  configMap:
    name: {{ . }}
    optional: true
{{- end }}
{{- end }}
{{- end -}}

{{/* Decision logs and status to a collector (deploy/components/collector). */}}
{{- define "imagegate.collectorArgs" -}}
{{- with .Values.collector.url }}
- --collector-url={{ . }}
{{- if $.Values.collector.decisionLogs }}
- --decision-logs
{{- end }}
{{- if $.Values.collector.status }}
- --status
{{- end }}
{{- range $key, $value := $.Values.collector.labels }}
- --label={{ $key }}={{ $value }}
{{- end }}
{{- if $.Values.collector.tokenSecret }}
- --collector-token-file=/etc/imagegate/collector-token/token
{{- end }}
{{- end }}
{{- end -}}

{{- define "imagegate.collectorMounts" -}}
{{- if and .Values.collector.url .Values.collector.tokenSecret }}
- name: collector-token
  mountPath: /etc/imagegate/collector-token
  readOnly: true
{{- end }}
{{- end -}}

{{- define "imagegate.collectorVolumes" -}}
{{- if and .Values.collector.url .Values.collector.tokenSecret }}
- name: collector-token
  secret:
    secretName: {{ .Values.collector.tokenSecret }}
    defaultMode: 288 # 0440
    optional: true
{{- end }}
{{- end -}}
