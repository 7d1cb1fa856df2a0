# METADATA
# description: |
#   exemptImages: globs on the normalized reference (`registry.example.com/tools/*`)
#   whose images no image rule judges or changes; every use is recorded in the audit
#   annotations. `*` stays within a path component, `**` crosses them; the registry is
#   compared as sources compare it (case, Docker Hub aliases), so a glob never matches a
#   look-alike registry.
package imagegate.lib.exemptions

import data.imagegate.lib.images
import data.imagegate.lib.sources
import data.imagegate.settings

# The globs with their registry folded, once per evaluation.
_patterns := [pattern |
	some raw in settings.config.exemptImages
	parts := split(trim_space(raw), "/")
	count(parts) > 1
	pattern := concat("/", array.concat([sources.host(parts[0])], array.slice(parts, 1, count(parts))))
]

# METADATA
# description: The image matches an exemption (only a valid reference can be named by one).
exempt(image) if {
	images.valid(image)
	some pattern in _patterns
	glob.match(pattern, ["/"], image.reference.normalized)
}

# METADATA
# description: The images of the review that are exempt, as written, in input order
exempted := [images.text(image, "raw") |
	some image in images.checked
	exempt(image)
]
