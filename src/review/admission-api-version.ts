/** The AdmissionReview versions the gateway answers; both share one wire shape. */
export const ADMISSION_API_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;
export type AdmissionApiVersion = (typeof ADMISSION_API_VERSIONS)[number];

export function isAdmissionApiVersion(value: string): value is AdmissionApiVersion {
  return (ADMISSION_API_VERSIONS as readonly string[]).includes(value);
}
