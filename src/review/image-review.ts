/**
 * Narrowing of an ImageReview (`imagepolicy.k8s.io/v1alpha1`), the only version the
 * in-tree ImagePolicyWebhook plugin sends.
 */
import { InputError } from '../shared/input-error.ts';
import { arrayField, isRecord, type JsonObject, recordField, stringField } from '../shared/json.ts';

export const IMAGE_REVIEW_API_VERSION = 'imagepolicy.k8s.io/v1alpha1';

export interface ImageReview {
  readonly apiVersion: typeof IMAGE_REVIEW_API_VERSION;
  /** Images in the order sent: containers, init and ephemeral containers, flattened. */
  readonly images: readonly string[];
  readonly namespace: string;
  readonly annotations: Readonly<Record<string, string>>;
  /** The spec exactly as sent. */
  readonly spec: JsonObject;
}

export function parseImageReview(body: unknown): ImageReview {
  if (!isRecord(body)) throw new InputError('the body is not a JSON object');
  const apiVersion = stringField(body, 'apiVersion');
  if (apiVersion !== IMAGE_REVIEW_API_VERSION) {
    throw new InputError(
      `unsupported apiVersion ${JSON.stringify(apiVersion)}: expected ${IMAGE_REVIEW_API_VERSION}`,
    );
  }
  const kind = stringField(body, 'kind');
  if (kind !== 'ImageReview') {
    throw new InputError(`unsupported kind ${JSON.stringify(kind)}: expected ImageReview`);
  }
  const spec = recordField(body, 'spec');
  if (spec === undefined) throw new InputError('the ImageReview has no spec');
  if (Object.hasOwn(spec, 'containers') && !Array.isArray(spec.containers)) {
    // Reading a malformed list as "no images" would let it through: refuse it instead.
    throw new InputError('spec.containers is not a list');
  }
  const containers = arrayField(spec, 'containers') ?? [];
  const images = containers.map((container, index) => {
    if (!isRecord(container)) throw new InputError(`spec.containers[${index}] is not an object`);
    return stringField(container, 'image');
  });
  const sent = recordField(spec, 'annotations') ?? {};
  // fromEntries defines own properties, so a "__proto__" key stays a plain key.
  const annotations = Object.fromEntries(
    Object.entries(sent).map(([key, value]) => {
      if (typeof value !== 'string') {
        throw new InputError(`spec.annotations[${JSON.stringify(key)}] is not a string`);
      }
      return [key, value];
    }),
  );
  return {
    apiVersion: IMAGE_REVIEW_API_VERSION,
    images,
    namespace: stringField(spec, 'namespace'),
    annotations,
    spec,
  };
}
