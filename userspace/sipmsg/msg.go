package sipmsg

// Kind identifies the headers the contract and its helpers know by name.
// Every compact form maps to the same Kind as its long form.
type Kind uint8

// Header kinds. KindOther is every header sipmsg does not name.
const (
	KindOther Kind = iota
	KindVia
	KindRoute
	KindRecordRoute
	KindCallID
	KindFrom
	KindTo
	KindCSeq
	KindMaxForwards
	KindContentLength
	KindContentType
	KindContact
	KindSupported
	KindSubject
	KindContentEncoding
	KindEvent
	KindAllowEvents
	KindReferTo
	KindReferredBy
	KindSessionExpires
	KindAcceptContact
	KindRejectContact
	KindRequestDisposition
	KindIdentity
	KindIdentityInfo
	KindAuthorization
	KindProxyAuthorization

	numKinds
)

// Header is one header line.
type Header struct {
	Kind Kind
	// Name is the header name as written (no trailing blanks).
	Name Span
	// Value runs from the first non-blank byte after the colon to the last
	// non-blank byte of the line; inside it, a folded continuation keeps
	// its CRLF and leading blanks.
	Value Span
	// Line is the whole line, from the name to the CRLF that ends it
	// (included), continuation lines included.
	Line Span
}

// Value is one element of a comma-separated header (Via, Route,
// Record-Route): its bytes without surrounding blanks, and the index of
// its header line in Msg.Headers.
type Value struct {
	Span   Span
	Header int32
}

// URI is a parsed URI. For a sip: or sips: URI every part is split; any
// other scheme is kept opaque (SIP false, only Scheme and Opaque set).
type URI struct {
	Whole  Span
	Scheme Span
	// SIP is true for the sip and sips schemes; Secure for sips.
	SIP, Secure bool
	// Opaque is everything after "scheme:" for a URI that is not SIP.
	Opaque Span

	HasUser  bool
	User     Span
	Password Span // zero unless HasPassword
	// HasPassword is true when the userinfo has a ':'.
	HasPassword bool
	// Host as written; an IPv6 reference keeps its brackets.
	Host    Span
	HasPort bool
	Port    Span
	PortNum int // 0 when absent
	// Params is the text after the first ';' of the host part, without that
	// ';', up to '?' or the end; Headers the text after '?'.
	Params  Span
	Headers Span

	LR           bool
	HasMaddr     bool
	Maddr        Span
	HasTransport bool
	Transport    Span
}

// NameAddr is a From, To, Route or Record-Route value: a name-addr
// (display name and <URI>) or an addr-spec (bare URI), then header
// parameters.
type NameAddr struct {
	Err     error
	Display Span // as written, quotes included; zero when absent
	Angle   bool // the URI is inside < >
	URI     URI
	// Params is the header-parameter text after the URI (or after '>'),
	// from its first ';'.
	Params Span
	HasTag bool
	Tag    Span
}

// Param is one Via parameter.
type Param struct {
	// Whole runs from the ';' before the name to the end of the value (or of
	// the name when there is no value).
	Whole    Span
	Name     Span
	HasValue bool
	Value    Span
}

// Via is a parsed Via value.
type Via struct {
	Err   error
	Value Span
	// Proto is "SIP/2.0/UDP" as written (it may hold blanks); Transport is
	// its last token.
	Proto     Span
	Transport Span
	// SentBy is host[:port] exactly as written; Host keeps IPv6 brackets.
	SentBy  Span
	Host    Span
	HasPort bool
	Port    Span
	PortNum int

	Params    [MaxParams]Param
	NumParams int

	HasBranch bool
	Branch    Span
	// HasRport: an rport parameter is present. RportName spans the letters
	// "rport"; Rport spans its value (HasRportValue).
	HasRport      bool
	HasRportValue bool
	RportName     Span
	Rport         Span
	RportNum      int
	// HasReceived: a received parameter; ReceivedParam is its Whole span.
	HasReceived   bool
	Received      Span
	ReceivedParam Span
	HasMaddr      bool
	Maddr         Span
}

// CSeq is the parsed CSeq header.
type CSeq struct {
	Err    error
	Num    Span
	Seq    uint32
	Method Span
}

// Msg is what Parse fills: offsets into the message, nothing copied.
type Msg struct {
	// Request or response: IsRequest tells. Start spans the whole start
	// line, CRLF included (after any leading CRLFs, which Parse skips).
	IsRequest bool
	Start     Span
	// Request line.
	Method, RURI Span
	// Version for both kinds; StatusCode and Reason for responses.
	Version    Span
	StatusCode int
	Reason     Span
	// StartErr is a field-level problem of the start line (bad method,
	// Request-URI, version or status code); the message is still framed.
	StartErr error
	// VersionOK: Version is exactly SIP/2.0 ("SIP" in any case).
	VersionOK bool

	Headers    [MaxHeaders]Header
	NumHeaders int
	// Count is how many header lines of each Kind there are (saturates at
	// 255); first holds index+1 of the first one.
	Count [numKinds]uint8
	first [numKinds]uint8

	Vias            [MaxVias]Value
	NumVias         int
	Routes          [MaxRoutes]Value
	NumRoutes       int
	RecordRoutes    [MaxRecordRoutes]Value
	NumRecordRoutes int

	// TopVia is the first Via value, parsed (when NumVias > 0).
	TopVia Via
	// TopRoute is the first Route value, parsed (when NumRoutes > 0).
	TopRoute NameAddr

	// CallID is the first Call-ID value; CallIDErr is set when it is empty.
	CallID    Span
	CallIDErr error
	From, To  NameAddr
	CSeq      CSeq
	// MaxForwards spans the first Max-Forwards value; MaxForwardsNum is its
	// number, capped at 256 (anything above 255 reads 256).
	MaxForwards    Span
	MaxForwardsNum int
	MaxForwardsErr error
	// ContentLength is the first Content-Length value, -1 when absent.
	ContentLength    int
	ContentLengthErr error

	// HeadersEnd is the offset of the empty line; Body the offset right
	// after it (the body runs to the end of the buffer, or Content-Length).
	HeadersEnd int
	Body       int
}

// Has reports whether a header of kind k is present.
func (m *Msg) Has(k Kind) bool { return k < numKinds && m.first[k] != 0 }

// First returns the first header line of kind k.
func (m *Msg) First(k Kind) (Header, bool) {
	if k >= numKinds || m.first[k] == 0 {
		return Header{}, false
	}
	return m.Headers[m.first[k]-1], true
}

// TopViaKey returns the top Via's branch value and sent-by as written,
// ok false when there is no parsable top Via. The slices alias b.
func (m *Msg) TopViaKey(b []byte) (branch, sentBy []byte, ok bool) {
	if m.NumVias == 0 || m.TopVia.Err != nil {
		return nil, nil, false
	}
	if m.TopVia.HasBranch {
		branch = m.TopVia.Branch.Bytes(b)
	}
	return branch, m.TopVia.SentBy.Bytes(b), true
}

// ValueAlone reports whether values[i] is the only value on its header
// line; NextOnLine returns the value after values[i] on the same line.
func ValueAlone(values []Value, i int) bool {
	h := values[i].Header
	if i > 0 && values[i-1].Header == h {
		return false
	}
	return i+1 >= len(values) || values[i+1].Header != h
}

// NextOnLine returns the index of the value after values[i] when it is on
// the same header line, else -1.
func NextOnLine(values []Value, i int) int {
	if i+1 < len(values) && values[i+1].Header == values[i].Header {
		return i + 1
	}
	return -1
}

func (m *Msg) reset() {
	m.IsRequest = false
	m.Start, m.Method, m.RURI, m.Version, m.Reason = Span{}, Span{}, Span{}, Span{}, Span{}
	m.StatusCode = 0
	m.StartErr = nil
	m.VersionOK = false
	m.NumHeaders = 0
	m.Count = [numKinds]uint8{}
	m.first = [numKinds]uint8{}
	m.NumVias, m.NumRoutes, m.NumRecordRoutes = 0, 0, 0
	m.TopVia.Err = nil
	m.TopVia.NumParams = 0
	m.TopRoute = NameAddr{}
	m.CallID, m.CallIDErr = Span{}, nil
	m.From, m.To = NameAddr{}, NameAddr{}
	m.CSeq = CSeq{}
	m.MaxForwards, m.MaxForwardsNum, m.MaxForwardsErr = Span{}, 0, nil
	m.ContentLength, m.ContentLengthErr = -1, nil
	m.HeadersEnd, m.Body = 0, 0
}
