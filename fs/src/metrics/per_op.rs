//! A metric family labelled `op` from a fixed set of operations, each
//! operation's metric resolved once: updating one is no map lookup.

use prometheus_client::metrics::family::{Family, MetricConstructor};

/// The label set: `op="<name>"`.
pub(super) type OpLabel = [(&'static str, &'static str); 1];

/// A fixed set of operations, each with a label value.
pub trait Op: Copy + 'static {
    /// Every operation, in index order.
    const ALL: &'static [Self];
    /// The label value (lower case, e.g. `get`).
    fn name(self) -> &'static str;
    /// Its place in [`Op::ALL`].
    fn index(self) -> usize;
}

/// One metric per operation of `O`, registered as one family.
#[derive(Debug)]
pub(super) struct PerOp<M, C: MetricConstructor<M>> {
    family: Family<OpLabel, M, C>,
    by_index: Vec<M>,
}

impl<M: Clone, C: MetricConstructor<M> + Clone> PerOp<M, C> {
    /// A family whose metrics `constructor` makes, one per operation of `O`.
    pub(super) fn new<O: Op>(constructor: C) -> Self {
        let family = Family::new_with_constructor(constructor);
        let by_index = O::ALL
            .iter()
            .map(|op| family.get_or_create_owned(&[("op", op.name())]))
            .collect();
        PerOp { family, by_index }
    }

    /// The metric of `op`.
    pub(super) fn get<O: Op>(&self, op: O) -> &M {
        &self.by_index[op.index()]
    }

    /// The family, for a registry.
    pub(super) fn family(&self) -> Family<OpLabel, M, C> {
        self.family.clone()
    }
}
