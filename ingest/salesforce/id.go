package salesforce

// suffixAlphabet maps a 5-bit case mask to the character of an 18-character
// id's suffix.
const suffixAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"

// ID18 writes a Salesforce id with 18 characters: a 15-character
// case-sensitive id gets its case-safe suffix (for each 5-character chunk,
// bit j set when character j is an upper-case letter); any other string is
// returned unchanged.
func ID18(id string) string {
	if len(id) != 15 {
		return id
	}
	suffix := make([]byte, 0, 3)
	for chunk := 0; chunk < 15; chunk += 5 {
		var mask byte
		for j := range 5 {
			c := id[chunk+j]
			switch {
			case c >= 'A' && c <= 'Z':
				mask |= 1 << j
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
			default:
				return id
			}
		}
		suffix = append(suffix, suffixAlphabet[mask])
	}
	return id + string(suffix)
}
