// ringswim live interop: one accessor for the `gonodes` helper.
//
// This file is NOT part of HashiCorp memberlist. tests/interop/build.sh copies
// it into the scratch copy of the Debian memberlist 0.2.2 package (see
// zz_ringswim_interop.go) because a member's incarnation, and the dead and
// left members, are only in the unexported nodeMap: Members() hides them.
// tests/interop/go/gonodes/main.go uses only this and the public API.

package memberlist

// RingswimMemberState is one entry of a node's member table.
type RingswimMemberState struct {
	Node        Node
	Incarnation uint32
	State       NodeStateType
}

// RingswimMemberStates returns every member this node knows, dead and left
// ones included, with its state and incarnation (a copy, under nodeLock).
func (m *Memberlist) RingswimMemberStates() []RingswimMemberState {
	m.nodeLock.RLock()
	defer m.nodeLock.RUnlock()
	out := make([]RingswimMemberState, 0, len(m.nodes))
	for _, n := range m.nodes {
		node := n.Node
		node.Meta = append([]byte(nil), n.Meta...)
		out = append(out, RingswimMemberState{Node: node, Incarnation: n.Incarnation, State: n.State})
	}
	return out
}
