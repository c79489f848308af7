"""MixShare: feature sharing between MIMO subnetworks by unmixing (thesis §3.4, App. A.6)."""
