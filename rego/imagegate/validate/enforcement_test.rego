package imagegate.validate_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.validate

untrusted := fixtures.pod([good("web", "nginx:1.25")])

untrusted_message := concat("", [
	`container "web" (containers[0]) image "nginx:1.25": registry docker.io/library/nginx is not trusted `,
	"(trusted: registry.example.com, ghcr.io/acme, localhost:5000)",
])

untrusted_violation := {
	"rule": "trusted-registry",
	"image": "nginx:1.25",
	"container": "web",
	"path": "/spec/containers/0",
	"message": untrusted_message,
}

with_break_glass(review, reason) := object.union(review, {"annotations": {validate.break_glass_annotation: reason}})

test_clean_pod_is_allowed_with_nothing_to_audit if {
	validate.decision == {
		"allowed": true,
		"enforcement": "deny",
		"exempt": false,
		"breakGlass": false,
		"violations": [],
		"reasons": [],
		"warnings": [],
		"auditAnnotations": {},
	} with input as fixtures.pod([good("web", "registry.example.com/web:1.0")])
}

test_deny if {
	validate.decision == {
		"allowed": false,
		"enforcement": "deny",
		"exempt": false,
		"breakGlass": false,
		"violations": [untrusted_violation],
		"reasons": [untrusted_message],
		"warnings": [],
		"auditAnnotations": {"violations": untrusted_message},
	} with input as untrusted
}

test_warn if {
	validate.decision == {
		"allowed": true,
		"enforcement": "warn",
		"exempt": false,
		"breakGlass": false,
		"violations": [untrusted_violation],
		"reasons": [],
		"warnings": [untrusted_message],
		"auditAnnotations": {"violations": untrusted_message},
	} with input as untrusted with data.imagegate.config.enforcement as "warn"
}

test_dryrun if {
	validate.decision == {
		"allowed": true,
		"enforcement": "dryrun",
		"exempt": false,
		"breakGlass": false,
		"violations": [untrusted_violation],
		"reasons": [],
		"warnings": [],
		"auditAnnotations": {"violations": untrusted_message, "enforcement": "dryrun"},
	} with input as untrusted with data.imagegate.config.enforcement as "dryrun"
}

test_unknown_enforcement_denies if {
	d := validate.decision with input as untrusted with data.imagegate.config.enforcement as "audit"
	not d.allowed
	d.enforcement == "deny"
}

test_messages_are_joined_for_audit if {
	d := validate.decision with input as fixtures.pod([good("a", "nginx:1"), good("b", "ghcr.io/acme/b")])
	count(d.reasons) == 2
	d.auditAnnotations.violations == concat("; ", d.reasons)
}

test_break_glass_turns_denials_into_warnings if {
	validate.decision == {
		"allowed": true,
		"enforcement": "deny",
		"exempt": false,
		"breakGlass": true,
		"violations": [untrusted_violation],
		"reasons": [],
		"warnings": [untrusted_message],
		"auditAnnotations": {"violations": untrusted_message, "break-glass": "INC-1234"},
	} with input as with_break_glass(untrusted, "INC-1234") with data.imagegate.config.breakGlass as true
}

test_break_glass_disabled_changes_nothing_but_is_recorded if {
	d := validate.decision with input as with_break_glass(untrusted, "INC-1234")
	not d.allowed
	not d.breakGlass
	d.reasons == [untrusted_message]
	d.auditAnnotations == {"violations": untrusted_message, "break-glass-ignored": "true"}
}

test_break_glass_needs_a_reason if {
	every reason in ["", "   ", true, 1234] {
		d := validate.decision with input as with_break_glass(untrusted, reason)
			with data.imagegate.config.breakGlass as true
		not d.allowed
		d.auditAnnotations == {"violations": untrusted_message}
	}
}

test_break_glass_other_annotations_do_nothing if {
	review := object.union(untrusted, {"annotations": {"other.image-policy.k8s.io/reason": "INC-1"}})
	d := validate.decision with input as review with data.imagegate.config.breakGlass as true
	not d.allowed
}

# The API server sets alpha.image-policy.k8s.io/failed-open on pods it admitted while an
# ImagePolicyWebhook backend was down with defaultAllow: true; a pod author can set it too.
# It proves nothing, so it waives nothing, even with break-glass on.
test_failed_open_annotation_waives_nothing if {
	review := object.union(untrusted, {"annotations": {"alpha.image-policy.k8s.io/failed-open": "true"}})
	d := validate.decision with input as review with data.imagegate.config.breakGlass as true
	not d.allowed
	d.reasons == [untrusted_message]
	d.auditAnnotations == {"violations": untrusted_message}
}

test_break_glass_is_audited_in_warn_mode if {
	d := validate.decision with input as with_break_glass(untrusted, "INC-1")
		with data.imagegate.config.enforcement as "warn"
		with data.imagegate.config.breakGlass as true
	d.allowed
	not d.breakGlass
	d.warnings == [untrusted_message]
	d.auditAnnotations == {"violations": untrusted_message, "break-glass": "INC-1"}
}

test_break_glass_without_violations_audits_nothing if {
	review := with_break_glass(fixtures.pod([good("web", "registry.example.com/web:1")]), "INC-1")
	d := validate.decision with input as review with data.imagegate.config.breakGlass as true
	d.allowed
	not d.breakGlass
	d.auditAnnotations == {}
}

test_excluded_namespace_is_exempt if {
	validate.decision == {
		"allowed": true,
		"enforcement": "deny",
		"exempt": true,
		"breakGlass": false,
		"violations": [],
		"reasons": [],
		"warnings": [],
		"auditAnnotations": {},
	} with input as object.union(untrusted, {"namespace": "kube-system"})
}

test_namespace_override_changes_enforcement_and_sources if {
	overrides := {"team-*": {"trustedRegistries": ["registry.example.com/teams"], "enforcement": "warn"}}
	review := object.union(fixtures.pod([good("web", "registry.example.com/web:1")]), {"namespace": "team-a"})
	d := validate.decision with input as review with data.imagegate.config.namespaces as overrides
	d.allowed
	d.enforcement == "warn"
	rules_of(d) == ["trusted-registry"]
	endswith(d.warnings[0], "(trusted: registry.example.com/teams)")
	teams := object.union(fixtures.pod([good("web", "registry.example.com/teams/web:1")]), {"namespace": "team-a"})
	validate.decision.violations == [] with input as teams with data.imagegate.config.namespaces as overrides
}

test_delete_and_connect_are_always_allowed if {
	every operation in ["DELETE", "CONNECT"] {
		d := validate.decision with input as fixtures.admission("Pod", operation, [fixtures.container("web", "evil.io/x")])
		d.allowed
		d.violations == []
	}
}

test_kinds_without_image_rules_are_allowed if {
	review := object.union(untrusted, {"kind": {"group": "", "version": "v1", "kind": "Service"}})
	validate.decision.allowed with input as review
}

test_update_ignores_old_images if {
	old := object.union(fixtures.container("legacy", "nginx"), {"new": false})
	validate.decision.allowed with input as fixtures.admission("Pod", "UPDATE", [old])
	validate.decision.allowed with input as fixtures.admission("Deployment", "UPDATE", [old])
}

test_update_checks_new_images if {
	old := object.union(fixtures.container("legacy", "nginx"), {"new": false})
	review := fixtures.admission("Deployment", "UPDATE", [old, good("web", "nginx:1.25")])
	d := validate.decision with input as review
	rules_of(d) == ["trusted-registry"]
	startswith(d.reasons[0], `container "web" (containers[1]) image "nginx:1.25": `)
}

test_ephemeral_containers if {
	old := object.union(good("web", "registry.example.com/web:1"), {"new": false})
	debug := object.union(fixtures.container("debug", "busybox"), {"list": "ephemeralContainers"})
	review := fixtures.build({
		"kind": "Pod", "operation": "UPDATE", "subResource": "ephemeralcontainers",
		"containers": [old, debug],
	})
	d := validate.decision with input as review
	rules_of(d) == ["trusted-registry", "latest-tag", "pull-policy"]
	startswith(d.reasons[0], `container "debug" (ephemeralContainers[0]) image "busybox": `)
	{v.path | some v in d.violations} == {"/spec/ephemeralContainers/0"}
}

test_image_review_is_validated_like_create if {
	review := fixtures.image_review(["registry.example.com/web:1", "nginx:1.25", "ghcr.io/acme/x"])
	d := validate.decision with input as review
	rules_of(d) == ["trusted-registry", "latest-tag"]
	d.reasons == [
		`image "nginx:1.25": registry docker.io/library/nginx is not trusted (trusted: registry.example.com, ghcr.io/acme, localhost:5000)`, # regal ignore:line-length
		`image "ghcr.io/acme/x": no tag or digest (implicit "latest"); pin a version tag or a digest`,
	]
	[v.container | some v in d.violations] == ["", ""]
	[v.path | some v in d.violations] == ["/spec/containers/1", "/spec/containers/2"]
}

test_image_review_has_no_pull_policy_rule if {
	pod_kind := {"kind": {"group": "", "version": "v1", "kind": "Pod"}}
	review := object.union(fixtures.image_review(["ghcr.io/acme/x:1"]), pod_kind)
	validate.decision.allowed with input as review
}

test_image_review_break_glass if {
	review := with_break_glass(fixtures.image_review(["nginx:1.25"]), "INC-9")
	d := validate.decision with input as review with data.imagegate.config.breakGlass as true
	d.allowed
	d.breakGlass
	d.auditAnnotations["break-glass"] == "INC-9"
}

test_empty_input_is_allowed if {
	d := validate.decision with input as {}
	d.allowed
	d.violations == []
}
