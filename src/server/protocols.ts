/**
 * The three review protocols, each as: narrow the body, translate it into the policy
 * input, evaluate, translate the decision back — and what to answer when the policy
 * itself fails (fail closed). The HTTP layer (app.ts) runs them all the same way.
 */

import { type AdmissionReview, parseAdmissionReview } from '../review/admission-review.ts';
import { toMutateDecision, toValidateDecision, type ValidateDecision } from '../review/decision.ts';
import { type ImageReview, parseImageReview } from '../review/image-review.ts';
import {
  admissionInput,
  imageCount,
  imageReviewInput,
  type PolicyInput,
} from '../review/policy-input.ts';
import {
  admissionFailure,
  imageReviewFailure,
  imageReviewResponse,
  mutationResponse,
  validationResponse,
} from '../review/responses.ts';

export type Outcome = 'allowed' | 'denied' | 'patched' | 'error' | 'bad_request';

export interface Answer {
  readonly body: unknown;
  readonly outcome: Outcome;
  /** Decision-log fields beyond the request summary: never the object itself. */
  readonly log: Record<string, unknown>;
}

export interface Protocol<Review> {
  readonly entrypoint: 'validate' | 'mutate';
  /** Which decision's registry facts it gathers (the facts entrypoint's key). */
  readonly facts: 'validate' | 'mutate';
  parse(body: unknown): Review;
  /** How many images the review carries, counted before its input is built. */
  images(review: Review): number;
  input(review: Review): PolicyInput;
  /** The answer to the decision entrypoint's result (`engine.decision` or the facts step's). */
  respond(review: Review, decision: unknown): Answer;
  failure(review: Review, message: string, code: 400 | 500): unknown;
}

const admissionInputOf = (review: AdmissionReview) =>
  admissionInput(review.apiVersion, review.request);
const admissionImages = (review: AdmissionReview) => imageCount(review.request);

/** A validating answer and its decision-log fields, the same for both protocols. */
function validated(decision: ValidateDecision, body: unknown): Answer {
  return {
    body,
    outcome: decision.allowed ? 'allowed' : 'denied',
    log: {
      allowed: decision.allowed,
      reasons: decision.reasons,
      warnings: decision.warnings,
      auditAnnotations: decision.auditAnnotations,
      enforcement: decision.enforcement,
      exempt: decision.exempt,
      breakGlass: decision.breakGlass,
    },
  };
}

const admissionFailureOf = (review: AdmissionReview, message: string, code: 400 | 500) =>
  admissionFailure(review.apiVersion, review.request.uid, message, code);

export const validateProtocol: Protocol<AdmissionReview> = {
  entrypoint: 'validate',
  facts: 'validate',
  parse: parseAdmissionReview,
  images: admissionImages,
  input: admissionInputOf,
  respond(review, result) {
    const decision = toValidateDecision(result);
    return validated(decision, validationResponse(review.apiVersion, review.request.uid, decision));
  },
  failure: admissionFailureOf,
};

export const mutateProtocol: Protocol<AdmissionReview> = {
  entrypoint: 'mutate',
  facts: 'mutate',
  parse: parseAdmissionReview,
  images: admissionImages,
  input: admissionInputOf,
  respond(review, result) {
    const decision = toMutateDecision(result);
    return {
      body: mutationResponse(review.apiVersion, review.request.uid, decision),
      outcome: decision.patch.length > 0 ? 'patched' : 'allowed',
      log: { allowed: true, mutations: decision.messages },
    };
  },
  failure: admissionFailureOf,
};

export const imageReviewProtocol: Protocol<ImageReview> = {
  entrypoint: 'validate',
  facts: 'validate',
  parse: parseImageReview,
  images: (review) => review.images.length,
  input: imageReviewInput,
  respond(_review, result) {
    const decision = toValidateDecision(result);
    return validated(decision, imageReviewResponse(decision));
  },
  failure: (_review, message) => imageReviewFailure(message),
};
