{{/* Name of the chart, or nameOverride. */}}
{{- define "ksg.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Name of every object: fullnameOverride, else the release name if it holds the chart
name (so `helm install kms-secret-guard` gives the names the kustomize base uses). */}}
{{- define "ksg.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "ksg.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "ksg.labels" -}}
app.kubernetes.io/name: {{ include "ksg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: kms-secret-guard
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{/* Selects the webhook pods (Deployment, Service, PDB, NetworkPolicy, spread). */}}
{{- define "ksg.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ksg.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: webhook
{{- end -}}

{{- define "ksg.tlsSecretName" -}}
{{- if .Values.tls.existingSecret -}}
{{- .Values.tls.existingSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "ksg.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* registry/repository:tag or registry/repository@digest, from an image block. */}}
{{- define "ksg.imageRef" -}}
{{- $image := .image -}}
{{- $repository := $image.repository -}}
{{- if $image.registry }}{{ $repository = printf "%s/%s" $image.registry $image.repository }}{{ end -}}
{{- if $image.digest -}}
{{- printf "%s@%s" $repository $image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repository (toString (default .defaultTag $image.tag)) -}}
{{- end -}}
{{- end -}}

{{- define "ksg.image" -}}
{{- include "ksg.imageRef" (dict "image" .Values.image "defaultTag" .Chart.AppVersion) -}}
{{- end -}}

{{/* A memory quantity in MiB; the chart sizes the V8 heap from it, so only Mi and Gi. */}}
{{- define "ksg.mebibytes" -}}
{{- $quantity := toString .quantity -}}
{{- if regexMatch "^[0-9]+Mi$" $quantity -}}
{{- trimSuffix "Mi" $quantity -}}
{{- else if regexMatch "^[0-9]+Gi$" $quantity -}}
{{- mul (atoi (trimSuffix "Gi" $quantity)) 1024 -}}
{{- else -}}
{{- fail (printf "%s is %q: write the memory limit in Mi or Gi (e.g. 256Mi); the chart sizes the V8 heap (NODE_OPTIONS) from it" .value $quantity) -}}
{{- end -}}
{{- end -}}

{{/* NODE_OPTIONS of serve: old space = memory limit - 96 MiB unless heap.maxOldSpaceSize
is set; old space + 3 semi-spaces must stay 64 MiB below the limit (Node, TLS and the SDK
outside the heap; bench/RESULTS.md), as the kustomize Deployment's flags do. */}}
{{- define "ksg.serveNodeOptions" -}}
{{- $limit := include "ksg.mebibytes" (dict "quantity" (required "resources.limits.memory is required: the chart sizes the V8 heap from it (e.g. 256Mi)" .Values.resources.limits.memory) "value" "resources.limits.memory") | atoi -}}
{{- $semi := int .Values.heap.maxSemiSpaceSize -}}
{{- $old := sub $limit 96 | int -}}
{{- if not (kindIs "invalid" .Values.heap.maxOldSpaceSize) }}{{ $old = int .Values.heap.maxOldSpaceSize }}{{ end -}}
{{- if lt $old 64 -}}
{{- fail (printf "resources.limits.memory %dMi leaves a V8 old space of %d MiB; give the guard at least 160Mi (256Mi recommended)" $limit $old) -}}
{{- end -}}
{{- if gt (add $old (mul 3 $semi) 64) $limit -}}
{{- fail (printf "heap.maxOldSpaceSize %d + 3 x heap.maxSemiSpaceSize %d + 64 MiB outside the heap exceed resources.limits.memory %dMi: lower the heap or raise the limit" $old $semi $limit) -}}
{{- end -}}
{{- printf "--max-old-space-size=%d --max-semi-space-size=%d" $old $semi -}}
{{- end -}}

{{/* NODE_OPTIONS of the reencrypt Job: old space = half the memory limit (256 for 512Mi):
the rest is Node itself, TLS, the KMS SDK and a list page (at most 32 MiB) while it is
parsed; a heap well under the limit makes V8 collect early. */}}
{{- define "ksg.reencryptNodeOptions" -}}
{{- $limit := include "ksg.mebibytes" (dict "quantity" (required "reencrypt.resources.limits.memory is required (e.g. 512Mi)" .Values.reencrypt.resources.limits.memory) "value" "reencrypt.resources.limits.memory") | atoi -}}
{{- $old := div $limit 2 | int -}}
{{- if lt $old 128 -}}
{{- fail (printf "reencrypt.resources.limits.memory %dMi is too small for the reencrypt Job; give it at least 256Mi (512Mi recommended)" $limit) -}}
{{- end -}}
{{- printf "--max-old-space-size=%d" $old -}}
{{- end -}}

{{/* Fails with the value to set when the key settings cannot work. */}}
{{- define "ksg.validate" -}}
{{- if not .Values.kms.keyId -}}
{{- fail "kms.keyId is required: set it to the KMS key that encrypts the cluster's Secrets (key id, ARN or alias/…), e.g. --set kms.keyId=key-hzz6…" -}}
{{- end -}}
{{- if and (not .Values.kms.region) (not .Values.kms.endpoint) -}}
{{- fail "kms.region is required unless kms.endpoint is set: e.g. --set kms.region=cn-hangzhou" -}}
{{- end -}}
{{- if and .Values.tls.existingSecret (not .Values.tls.caBundle) -}}
{{- fail "tls.caBundle is required with tls.existingSecret: the base64 of the PEM CA that signed the Secret's tls.crt (e.g. base64 -w0 ca.crt)" -}}
{{- end -}}
{{- if and .Values.tls.existingSecret .Values.certManager.enabled -}}
{{- fail "certManager.enabled and tls.existingSecret exclude each other: choose one source for the serving certificate" -}}
{{- end -}}
{{- end -}}

{{/* The monitoring.coreos.com/v1 kind named by .kind renders when enabled is true, or
auto and the API server serves it. */}}
{{- define "ksg.monitoringEnabled" -}}
{{- $enabled := .enabled -}}
{{- if eq (toString $enabled) "auto" -}}
{{- if .root.Capabilities.APIVersions.Has (printf "monitoring.coreos.com/v1/%s" .kind) }}true{{ end -}}
{{- else if $enabled -}}true{{- end -}}
{{- end -}}

{{/* Webhook pods' securityContext of the container (restricted Pod Security level). */}}
{{- define "ksg.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "ksg.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The namespace selector both webhooks share. */}}
{{- define "ksg.namespaceSelector" -}}
{{- $excluded := concat (list "kube-system" .Release.Namespace) .Values.webhooks.excludedNamespaces | uniq -}}
{{- $selector := .Values.webhooks.namespaceSelector | default dict -}}
{{- if $selector.matchLabels }}
matchLabels:
  {{- toYaml $selector.matchLabels | nindent 2 }}
{{- end }}
matchExpressions:
  - key: kubernetes.io/metadata.name
    operator: NotIn
    values: {{ toJson $excluded }}
  {{- with $selector.matchExpressions }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
{{- end -}}

{{- define "ksg.envFrom" -}}
- configMapRef:
    name: {{ include "ksg.fullname" . }}
{{- with .Values.credentials.existingSecret }}
- secretRef:
    name: {{ . }}
{{- end }}
{{- end -}}
