//! A LIFO stack that keeps its first `N` items inline and spills to the heap only beyond.
//!
//! Tree walks over topic levels are written as loops with an explicit stack instead of
//! recursion, because a client controls how deep they go (a topic or filter may have tens of
//! thousands of levels) and recursion that deep would overflow the thread's stack. Keeping
//! the first items inline means a lookup allocates nothing in the usual case.

pub(crate) struct InlineStack<T, const N: usize> {
    /// The bottom `N` slots; `inline[..len]` are `Some`, the rest `None`.
    inline: [Option<T>; N],
    /// How many inline slots are in use.
    len: usize,
    /// Items above the inline ones, once those are full. Popped first.
    spill: Vec<T>,
}

impl<T, const N: usize> InlineStack<T, N> {
    pub(crate) fn new() -> Self {
        InlineStack {
            inline: std::array::from_fn(|_| None),
            len: 0,
            spill: Vec::new(),
        }
    }

    pub(crate) fn push(&mut self, item: T) {
        if !self.spill.is_empty() {
            self.spill.push(item);
            return;
        }
        match self.inline.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(item);
                self.len += 1;
            }
            None => self.spill.push(item),
        }
    }

    pub(crate) fn pop(&mut self) -> Option<T> {
        if let Some(item) = self.spill.pop() {
            return Some(item);
        }
        let top = self.len.checked_sub(1)?;
        self.len = top;
        self.inline.get_mut(top)?.take()
    }
}

#[cfg(test)]
mod tests {
    use super::InlineStack;

    #[test]
    fn lifo_across_the_spill_boundary() {
        let mut stack: InlineStack<u32, 2> = InlineStack::new();
        assert_eq!(stack.pop(), None);
        for i in 0..5 {
            stack.push(i);
        }
        assert_eq!(stack.pop(), Some(4));
        stack.push(9);
        let rest: Vec<u32> = std::iter::from_fn(|| stack.pop()).collect();
        assert_eq!(rest, vec![9, 3, 2, 1, 0]);
        stack.push(7);
        assert_eq!(stack.pop(), Some(7));
        assert_eq!(stack.pop(), None);
    }
}
