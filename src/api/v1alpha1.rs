//! v1alpha1
