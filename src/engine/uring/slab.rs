//! A slab with generations: stable `u32` indexes for the things a CQE can
//! name (sockets, listeners, streams, ops), and a generation per slot so a
//! late CQE of a removed thing is recognised instead of hitting its
//! successor.

/// One slot: its current generation and, when occupied, its value.
#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Values addressed by `(index, generation)`.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<u32>,
    len: usize,
}

/// Generations wrap at 24 bits: the token packs them next to an 8-bit kind.
pub(crate) const GEN_MASK: u32 = (1 << 24) - 1;

impl<T> Slab<T> {
    /// An empty slab.
    pub(crate) fn new() -> Self {
        Slab { slots: Vec::new(), free: Vec::new(), len: 0 }
    }

    /// Number of occupied slots.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Stores `value`; returns its `(index, generation)`.
    pub(crate) fn insert(&mut self, value: T) -> (u32, u32) {
        self.len += 1;
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            debug_assert!(slot.value.is_none());
            slot.value = Some(value);
            (index, slot.generation)
        } else {
            let index = u32::try_from(self.slots.len()).expect("slab holds at most u32::MAX slots");
            self.slots.push(Slot { generation: 0, value: Some(value) });
            (index, 0)
        }
    }

    /// The value at `index` if it is occupied with generation `generation`.
    pub(crate) fn get_mut(&mut self, index: u32, generation: u32) -> Option<&mut T> {
        let slot = self.slots.get_mut(index as usize)?;
        if slot.generation == generation { slot.value.as_mut() } else { None }
    }

    /// The value at `index` whatever its generation, with that generation.
    pub(crate) fn get_any_mut(&mut self, index: u32) -> Option<(u32, &mut T)> {
        let slot = self.slots.get_mut(index as usize)?;
        let generation = slot.generation;
        slot.value.as_mut().map(|v| (generation, v))
    }

    /// Removes the value at `index` (whatever its generation) and bumps the
    /// slot's generation, so tokens naming the old value no longer match.
    pub(crate) fn remove(&mut self, index: u32) -> Option<T> {
        let slot = self.slots.get_mut(index as usize)?;
        let value = slot.value.take()?;
        slot.generation = (slot.generation + 1) & GEN_MASK;
        self.free.push(index);
        self.len -= 1;
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_generation_does_not_match_successor() {
        let mut slab = Slab::new();
        let (i, g) = slab.insert("a");
        assert_eq!(slab.remove(i), Some("a"));
        let (j, h) = slab.insert("b");
        assert_eq!(i, j);
        assert_ne!(g, h);
        assert!(slab.get_mut(i, g).is_none());
        assert_eq!(slab.get_mut(j, h).copied(), Some("b"));
        assert_eq!(slab.len(), 1);
    }
}
