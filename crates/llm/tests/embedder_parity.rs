//! all-MiniLM-L6-v2 on candle gives sentence-transformers' vectors
//! (fixture from scripts/peer/gen_embed_fixture.py): cosine ≥ 0.999 each.

mod common;

use tresor_llm::embed::Embedder;
use tresor_llm::Device;

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

#[test]
fn minilm_matches_sentence_transformers() {
    let fx = common::fixture("minilm_st.json");
    let e = Embedder::load(&common::shipped("all-minilm-l6-v2"), &Device::Cpu).unwrap();
    assert_eq!(e.dim(), 384);
    assert_eq!(e.max_tokens(), fx["max_seq_length"].as_u64().unwrap() as usize);
    let sentences: Vec<&str> = fx["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    let ours = e.embed(&sentences).unwrap();
    let mut worst = (1.0f32, "");
    for ((s, want), got) in sentences.iter().zip(fx["vectors"].as_array().unwrap()).zip(&ours) {
        let want: Vec<f32> = want.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect();
        let c = cos(&want, got);
        if c < worst.0 {
            worst = (c, s);
        }
    }
    assert!(worst.0 >= 0.999, "cosine {:.5} to sentence-transformers for {:?}", worst.0, worst.1);
    // The published check values.
    let c1 = cos(&ours[0], &ours[1]);
    assert!((c1 - 0.7689).abs() < 2e-3, "{c1}");
}
