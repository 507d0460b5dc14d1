{{/*
Names are MetalLB's manifest names, fixed: the controller and the speakers look each other up by them.
*/}}

{{- define "ironlb.controller.serviceAccountName" -}}
{{- if .Values.controller.serviceAccount.create -}}
{{ .Values.controller.serviceAccount.name | default "controller" }}
{{- else -}}
{{ .Values.controller.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{- define "ironlb.speaker.serviceAccountName" -}}
{{- if .Values.speaker.serviceAccount.create -}}
{{ .Values.speaker.serviceAccount.name | default "speaker" }}
{{- else -}}
{{ .Values.speaker.serviceAccount.name | default "default" }}
{{- end -}}
{{- end -}}

{{- define "ironlb.secretName" -}}
{{ .Values.speaker.secretName | default "memberlist" }}
{{- end -}}

{{- define "ironlb.image" -}}
{{ .image.repository }}:{{ .image.tag | default .root.Chart.AppVersion }}
{{- end -}}

{{/* The metrics port's name: MetalLB's for HTTPS. */}}
{{- define "ironlb.metricsPortName" -}}
{{ if .Values.prometheus.secureMetrics }}metricshttps{{ else }}metrics{{ end }}
{{- end -}}

{{- define "ironlb.metricsScheme" -}}
{{ if .Values.prometheus.secureMetrics }}https{{ else }}http{{ end }}
{{- end -}}

{{/* Flags of both components for the metrics endpoint. */}}
{{- define "ironlb.metricsArgs" -}}
- --port={{ .root.Values.prometheus.metricsPort }}
{{- if .root.Values.prometheus.secureMetrics }}
- --metrics-secure
{{- with .root.Values.tls.minVersion }}
- --tls-min-version={{ . }}
{{- end }}
{{- if .secret }}
- --metrics-cert-dir=/etc/metrics
{{- end }}
{{- end }}
{{- end -}}

{{/* What the chart refuses instead of silently ignoring. */}}
{{- define "ironlb.checks" -}}
{{- if or .Values.tls.cipherSuites .Values.tls.curvePreferences }}
{{- fail "tls.cipherSuites and tls.curvePreferences are not supported by ironlb (set tls.minVersion only)" }}
{{- end }}
{{- if and .Values.prometheus.serviceMonitor.enabled .Values.prometheus.podMonitor.enabled }}
{{- fail "prometheus.serviceMonitor.enabled and prometheus.podMonitor.enabled cannot both be true" }}
{{- end }}
{{- if and (not .Values.speaker.memberlist.enabled) .Values.speaker.nodeSelector }}
{{- fail "speaker.nodeSelector must be empty when speaker.memberlist.enabled is false (the speakers must run on every node)" }}
{{- end }}
{{- if not (has .Values.crds.bgppeerConversion (list "none" "webhook")) }}
{{- fail "crds.bgppeerConversion must be none or webhook" }}
{{- end }}
{{- if not (has .Values.crds.validationFailurePolicy (list "Ignore" "Fail")) }}
{{- fail "crds.validationFailurePolicy must be Ignore or Fail" }}
{{- end }}
{{- end -}}

{{/* Liveness and readiness probes of a component (.component: its values; .host: 127.0.0.1 or empty). */}}
{{- define "ironlb.probes" -}}
{{- range $kind, $path := dict "livenessProbe" "/healthz" "readinessProbe" "/readyz" }}
{{- $p := get $.component $kind }}
{{- if $p.enabled }}
{{ $kind }}:
  httpGet: {{ if $.host }}{host: {{ $.host }}, {{ else }}{{ "{" }}{{ end }}path: {{ $path }}, port: {{ $p.port }}}
  initialDelaySeconds: {{ $p.initialDelaySeconds }}
  periodSeconds: {{ $p.periodSeconds }}
  timeoutSeconds: {{ $p.timeoutSeconds }}
  successThreshold: {{ $p.successThreshold }}
  failureThreshold: {{ $p.failureThreshold }}
{{- end }}
{{- end }}
{{- end -}}
