# disallowedTags, requireDigest and exemptImages, with the bypasses they must withstand.
package imagegate.validate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.mutate
import data.imagegate.validate

pod_of(images) := fixtures.pod([good(sprintf("c%d", [i]), image) | some i, image in images])

test_disallowed_tags_are_refused_whatever_their_case if {
	every raw in ["registry.example.com/app:dev", "registry.example.com/app:DEV", "registry.example.com/app:Main"] {
		d := validate.decision with input as pod_of([raw])
			with data.imagegate.config.disallowedTags as ["dev", "main"]
		rules_of(d) == ["disallowed-tag"]
	}
	d := validate.decision with input as pod_of(["registry.example.com/app:dev"])
		with data.imagegate.config.disallowedTags as ["dev"]
	d.reasons == [concat("", [
		`container "c0" (containers[0]) image "registry.example.com/app:dev": `,
		`tag "dev" is not allowed (disallowedTags); pin a version tag or a digest`,
	])]
}

test_disallowed_tags_spare_look_alikes_and_digests if {
	allowed := [
		"registry.example.com/app:devel",
		"registry.example.com/app:1.0-dev",
		concat("", ["registry.example.com/app:dev@", digest]),
	]
	validate.decision.allowed with input as pod_of(allowed)
		with data.imagegate.config.disallowedTags as ["dev"]
}

# Regression (imagegate ≤ 15a413e): denyLatest compared the tag as written, so
# `nginx:LATEST` passed.
test_latest_is_refused_whatever_its_case if {
	d := validate.decision with input as pod_of(["registry.example.com/app:LATEST"])
	rules_of(d) == ["latest-tag"]
	d.reasons == [concat("", [
		`container "c0" (containers[0]) image "registry.example.com/app:LATEST": `,
		`tag "LATEST" is not allowed; pin a version tag or a digest`,
	])]
}

test_latest_is_reported_once_when_also_a_disallowed_tag if {
	d := validate.decision with input as pod_of(["registry.example.com/app:latest"])
		with data.imagegate.config.disallowedTags as ["latest"]
	rules_of(d) == ["latest-tag"]

	# Without denyLatest, disallowedTags alone refuses it, and the untagged pass.
	d2 := validate.decision with input as pod_of(["registry.example.com/app:latest", "registry.example.com/app"])
		with data.imagegate.config.disallowedTags as ["latest"]
		with data.imagegate.config.denyLatest as false
	[[v.image, v.rule] | some v in d2.violations] == [["registry.example.com/app:latest", "disallowed-tag"]]
}

test_require_digest if {
	images := [
		"registry.example.com/app:1.0",
		concat("", ["registry.example.com/app@", digest]),
		concat("", ["registry.example.com/app:1.0@", digest]),
	]
	d := validate.decision with input as pod_of(images)
		with data.imagegate.config.requireDigest as true
	[[v.image, v.rule] | some v in d.violations] == [["registry.example.com/app:1.0", "require-digest"]]
	d.reasons[0] == concat("", [
		`container "c0" (containers[0]) image "registry.example.com/app:1.0": `,
		"no digest; images here must be pinned by digest (requireDigest)",
	])
}

test_every_key_is_overridable_per_namespace if {
	review := object.union(pod_of(["registry.example.com/app:dev"]), {"namespace": "team-x"})
	config := {
		"trustedRegistries": ["registry.example.com"],
		"disallowedTags": ["dev"], "requireDigest": true,
		"namespaces": {"team-*": {"disallowedTags": [], "requireDigest": false}},
	}
	validate.decision.allowed with input as review with data.imagegate.config as config
	prod := object.union(review, {"namespace": "prod"})
	not validate.decision.allowed with input as prod with data.imagegate.config as config
}

tools := ["registry.example.com/tools/*", "docker.io/library/busybox:*"]

test_exempt_images_skip_every_rule_and_are_audited if {
	review := pod_of([
		"registry.example.com/tools/debug:latest",
		"REGISTRY.EXAMPLE.COM/tools/kubectl",
		"busybox:1.36",
		"index.docker.io/library/busybox:latest",
	])
	d := validate.decision with input as review
		with data.imagegate.config.exemptImages as tools
		with data.imagegate.config.requireDigest as true
	d.allowed
	d.violations == []
	d.auditAnnotations == {"exempt-images": concat(", ", [
		"registry.example.com/tools/debug:latest",
		"REGISTRY.EXAMPLE.COM/tools/kubectl",
		"busybox:1.36",
		"index.docker.io/library/busybox:latest",
	])}
}

test_an_exemption_glob_is_aliased_like_sources if {
	d := validate.decision with input as pod_of(["busybox:1.36"])
		with data.imagegate.config.exemptImages as ["Index.Docker.IO/library/busybox:*"]
	d.violations == []
}

test_exemption_bypass_attempts_are_judged if {
	attempts := [
		# a look-alike registry
		"registry.example.com.evil.io/tools/x:1",
		"evil.io/registry.example.com/tools/x:1",
		# `*` stays within one path component
		"registry.example.com/tools/deep/x:latest",
		# a component that only starts like the exempt one
		"registry.example.com/toolsx/x:latest",
		# Docker Hub without library/ is another repository
		"docker.io/busyboxes/busybox:1",
	]
	d := validate.decision with input as pod_of(attempts)
		with data.imagegate.config.exemptImages as tools
	count(d.violations) >= count(attempts)
	not d.auditAnnotations["exempt-images"]
	every raw in attempts {
		some v in d.violations
		v.image == raw
	}
}

test_an_invalid_reference_is_never_exempt if {
	invalid := fixtures.invalid("invalid reference format")
	bad := object.union(good("c0", "registry.example.com/tools/X"), {"reference": invalid})
	d := validate.decision with input as fixtures.pod([bad])
		with data.imagegate.config.exemptImages as ["registry.example.com/tools/**"]
	rules_of(d) == ["invalid-reference"]
}

test_exempt_images_are_not_mutated if {
	review := fixtures.pod([
		fixtures.container("debug", "registry.example.com/tools/debug:1"),
		fixtures.container("web", "nginx:1"),
	])
	d := mutate.decision with input as review
		with data.imagegate.config.exemptImages as tools
		with data.imagegate.config.rewriteRegistry as "mirror.example.com"
	[op.path | some op in d.patch] == ["/spec/containers/1/image", "/spec/containers/1/imagePullPolicy"]
}

test_no_exemption_audit_in_an_excluded_namespace if {
	review := object.union(pod_of(["registry.example.com/tools/x:1"]), {"namespace": "kube-system"})
	d := validate.decision with input as review
		with data.imagegate.config.exemptImages as tools
	d.auditAnnotations == {}
}
