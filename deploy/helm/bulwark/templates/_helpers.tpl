{{- define "bulwark.labels" -}}
app.kubernetes.io/name: bulwark
app.kubernetes.io/component: webhook
{{- end }}
{{- define "bulwark.scannerLabels" -}}
app.kubernetes.io/name: bulwark
app.kubernetes.io/component: scanner
{{- end }}
{{/* bulwark.image: repository@digest when a digest is given, else repository:tag. */}}
{{- define "bulwark.image" -}}
{{- if .digest -}}{{ .repository }}@{{ .digest }}{{- else -}}{{ .repository }}:{{ .tag }}{{- end -}}
{{- end }}
{{/* The Service the webhook configurations call, and the names the serving certificate carries. */}}
{{- define "bulwark.serviceName" -}}bulwark-webhook{{- end }}
{{/* The name of both webhook configurations. */}}
{{- define "bulwark.webhookConfigName" -}}bulwark{{- end }}
{{- define "bulwark.namespaceSelector" -}}
namespaceSelector:
  matchExpressions:
    - key: kubernetes.io/metadata.name
      operator: NotIn
      values: {{ concat (list "kube-system" .Release.Namespace) .Values.webhook.excludeNamespaces | uniq | toJson }}
{{- end }}
{{- define "bulwark.clientConfig" -}}
clientConfig:
  service: {name: {{ include "bulwark.serviceName" .root }}, namespace: {{ .root.Release.Namespace }}, path: {{ .path }}, port: 443}
  {{- if eq .root.Values.certificates.mode "secret" }}
  caBundle: {{ .root.Values.webhook.caBundle }}
  {{- end }}
{{- end }}
{{/* Annotations of the webhook configurations: cert-manager's CA injector fills their caBundle. */}}
{{- define "bulwark.webhookAnnotations" -}}
{{- if eq .Values.certificates.mode "cert-manager" }}
annotations:
  cert-manager.io/inject-ca-from: {{ .Release.Namespace }}/{{ include "bulwark.serviceName" . }}
{{- end }}
{{- end }}
