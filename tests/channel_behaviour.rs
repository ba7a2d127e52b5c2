//! End-to-end tests of channel sources, ACK policies, rules and logs (being written).
