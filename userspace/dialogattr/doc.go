// Package dialogattr computes what the dialog tracker records of an INVITE
// beyond its SIP identifiers: the src, dst and data fields expanded from
// the dialogs section's templates, and the tags its rules add or remove
// (Kamailio's dlgs_init(src, dst, data), dlgs_tags_add and dlgs_tags_rm,
// written as configuration instead of script).
//
// Both paths' INVITEs go through it: the slow path's as parsed, the fast
// path's from the copy its event carries. It knows the message (sipmsg),
// the templates (pvar) and nothing of the tracker, config or the paths.
//
// New compiles the templates, prefixes and regular expressions once;
// Attrs.Eval then allocates nothing once its Result has grown: the strings
// it returns alias the Result's buffer, valid until the next Eval into the
// same Result (the tracker copies what it keeps).
package dialogattr
