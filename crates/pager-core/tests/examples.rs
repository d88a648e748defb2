//! The shipped example on-call document parses and validates, so it cannot rot.

#[test]
fn shipped_oncall_example_is_valid() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/oncall.example.toml"
    );
    let text = std::fs::read_to_string(path).expect("example exists");
    let doc = pager_core::OnCallDoc::from_toml(&text).expect("example parses");
    assert_eq!(doc.validate(), vec![]);
    assert!(doc.users.len() >= 2 && !doc.services.is_empty());
    // Nobody is ever left without cover in the two weeks from 2026-12-01.
    let dec1 = 1_796_083_200_000;
    assert_eq!(doc.schedule_gaps(dec1, dec1 + 14 * 86_400_000), vec![]);
}
