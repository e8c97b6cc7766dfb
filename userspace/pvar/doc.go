// Package pvar expands templates of Kamailio-style pseudo-variables over a
// SIP message scanned by sipmsg: "$fU@$ci" is the From user, '@' and the
// Call-ID. Algorithm 7 hashes one (dispatcher.hash_pvar); the dialogs
// section builds each dialog's src, dst, data and tags with them.
//
// A template is parsed once, at load (Parse: an unknown variable is an
// error there, never per message), and expanded per message into a byte
// buffer the caller owns (Template.Append), without allocating.
//
// Variables, written $name or $(name); $hdr takes the header name in
// parentheses, $hdr(Name) or $(hdr(Name)):
//
//	$ci Call-ID        $si source IP (IPv6 without brackets)   $sp source port
//	$fu From URI       $fU From URI user   $fd From URI host   $ft From tag
//	$tu To URI         $tU To URI user     $td To URI host     $tt To tag
//	$ru Request-URI    $rU R-URI user      $rd R-URI host      $rm method
//	$du the destination URI the message is forwarded to (Input.DstURI)
//	$hdr(Name) the value of the first header Name (compact forms alike)
//
// Everything else is literal text. Kamailio's indexes ($hdr(Via)[1]) and
// transformations ($(ci{s.len})) are not supported: they are errors.
package pvar
