package imagegate.lib.images_test

import data.imagegate.fixtures_test as fixtures
import data.imagegate.lib.images

web := fixtures.container("web", "registry.example.com/web:1")

old_sidecar := object.union(fixtures.container("proxy", "registry.example.com/proxy:1"), {"new": false})

raws(checked) := [image.raw | some image in checked]

test_every_image_on_create_in_document_order if {
	containers := [
		web,
		fixtures.container("log", "registry.example.com/log:1"),
		object.union(fixtures.container("init", "registry.example.com/init:1"), {"list": "initContainers"}),
	]
	checked := images.checked with input as fixtures.pod(containers)
	raws(checked) == ["registry.example.com/web:1", "registry.example.com/log:1", "registry.example.com/init:1"]
	[image.path | some image in checked] == ["/spec/containers/0", "/spec/containers/1", "/spec/initContainers/0"]
}

test_update_checks_only_new_images if {
	checked := images.checked with input as fixtures.admission("Pod", "UPDATE", [web, old_sidecar])
	raws(checked) == ["registry.example.com/web:1"]
}

test_create_checks_images_even_if_marked_old if {
	checked := images.checked with input as fixtures.admission("Deployment", "CREATE", [old_sidecar])
	raws(checked) == ["registry.example.com/proxy:1"]
}

test_delete_and_connect_check_nothing if {
	count(images.checked) == 0 with input as fixtures.admission("Pod", "DELETE", [web])
	count(images.checked) == 0 with input as fixtures.admission("Pod", "CONNECT", [web])
}

test_every_workload_kind_is_checked if {
	every kind in images.workload_kinds {
		count(images.checked) == 1 with input as fixtures.admission(kind, "CREATE", [web])
	}
}

test_other_kinds_are_not_checked if {
	other := object.union(fixtures.pod([web]), {"kind": {"group": "", "version": "v1", "kind": "ConfigMap"}})
	count(images.checked) == 0 with input as other
	count(images.checked) == 0 with input as object.remove(fixtures.pod([web]), {"kind"})
}

test_image_review_is_checked_whatever_its_kind if {
	count(images.checked) == 2 with input as fixtures.image_review(["nginx", "ghcr.io/acme/app:1"])
	images.imagereview with input as fixtures.image_review(["nginx"])
	not images.imagereview with input as fixtures.pod([web])
}

test_input_without_images if {
	count(images.checked) == 0 with input as {"protocol": "admission", "operation": "CREATE", "kind": {"kind": "Pod"}}
	count(images.checked) == 0 with input as {"operation": "CREATE", "kind": {"kind": "Pod"}, "images": "nginx"}
	images.operation == "" with input as {"operation": 1}
}

test_missing_new_counts_as_new if {
	images.is_new({})
	images.is_new({"new": true})
	not images.is_new({"new": false})
}

test_valid_needs_every_field if {
	images.valid({"reference": fixtures.reference("nginx")})
	not images.valid({"reference": fixtures.invalid("invalid reference format")})
	not images.valid({"reference": object.remove(fixtures.reference("nginx"), {"domain"})})
	not images.valid({"reference": object.remove(fixtures.reference("nginx"), {"normalized"})})
	not images.valid({"reference": object.union(fixtures.reference("nginx"), {"normalized": ""})})
	not images.valid({"reference": object.union(fixtures.reference("nginx"), {"valid": "true"})})
	not images.valid({})
}

test_describe_names_container_list_and_index if {
	image := {"container": "web", "list": "initContainers", "index": 2, "raw": "nginx"}
	images.describe(image) == `container "web" (initContainers[2]) image "nginx": `
}

test_describe_image_review_names_only_the_image if {
	images.describe({"container": "", "list": "containers", "index": 0, "raw": "nginx"}) == `image "nginx": `
}

test_describe_survives_odd_fields if {
	odd := {"container": "web", "list": "containers", "index": "0", "raw": 7}
	images.describe(odd) == `container "web" (containers[?]) image "": `
}
