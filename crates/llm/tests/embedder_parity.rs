//! all-MiniLM-L6-v2 gives sentence-transformers' vectors (fixture from
//! scripts/peer/gen_embed_fixture.py): cosine ≥ 0.999 each on the f32 paths
//! (Tresor's encoder and candle's BertModel), ≥ 0.995 in int8 (to the
//! fixture and to Tresor's own f32 vectors).

mod common;

use tresor_llm::embed::{Backend, Embedder, Precision};
use tresor_llm::Device;

fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

struct Fixture {
    sentences: Vec<String>,
    vectors: Vec<Vec<f32>>,
    max_seq_length: usize,
}

fn fixture() -> Fixture {
    let fx = common::fixture("minilm_st.json");
    Fixture {
        sentences: fx["sentences"].as_array().unwrap().iter().map(|s| s.as_str().unwrap().to_string()).collect(),
        vectors: fx["vectors"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect())
            .collect(),
        max_seq_length: fx["max_seq_length"].as_u64().unwrap() as usize,
    }
}

/// The embedder's vectors of the fixture sentences and the worst cosine
/// (with its sentence) to `want`.
fn worst_cosine(ours: &[Vec<f32>], want: &[Vec<f32>], sentences: &[String]) -> (f32, String) {
    let mut worst = (1.0f32, String::new());
    for ((s, want), got) in sentences.iter().zip(want).zip(ours) {
        let c = cos(want, got);
        if c < worst.0 {
            worst = (c, s.clone());
        }
    }
    worst
}

fn embed(backend: Backend, fx: &Fixture) -> Vec<Vec<f32>> {
    let e = Embedder::load_with(&common::shipped("all-minilm-l6-v2"), &Device::Cpu, backend).unwrap();
    assert_eq!(e.dim(), 384);
    assert_eq!(e.max_tokens(), fx.max_seq_length);
    let sentences: Vec<&str> = fx.sentences.iter().map(String::as_str).collect();
    e.embed(&sentences).unwrap()
}

#[test]
fn minilm_f32_matches_sentence_transformers() {
    let fx = fixture();
    for backend in [Backend::Tresor(Precision::F32), Backend::Candle] {
        let ours = embed(backend, &fx);
        let worst = worst_cosine(&ours, &fx.vectors, &fx.sentences);
        eprintln!("{}: worst cosine to sentence-transformers {:.6}", backend.name(), worst.0);
        assert!(worst.0 >= 0.999, "{}: cosine {:.5} to sentence-transformers for {:?}", backend.name(), worst.0, worst.1);
        // The published check values.
        let c1 = cos(&ours[0], &ours[1]);
        assert!((c1 - 0.7689).abs() < 2e-3, "{}: {c1}", backend.name());
    }
}

#[test]
fn minilm_int8_stays_close_to_f32() {
    let fx = fixture();
    let f32s = embed(Backend::Tresor(Precision::F32), &fx);
    let int8 = embed(Backend::Tresor(Precision::Int8), &fx);
    let to_f32 = worst_cosine(&int8, &f32s, &fx.sentences);
    let to_st = worst_cosine(&int8, &fx.vectors, &fx.sentences);
    eprintln!("int8: worst cosine to f32 {:.6}, to sentence-transformers {:.6}", to_f32.0, to_st.0);
    assert!(to_f32.0 >= 0.995, "int8 cosine {:.5} to the f32 vector for {:?}", to_f32.0, to_f32.1);
    assert!(to_st.0 >= 0.995, "int8 cosine {:.5} to sentence-transformers for {:?}", to_st.0, to_st.1);
    let c1 = cos(&int8[0], &int8[1]);
    assert!((c1 - 0.7689).abs() < 1e-2, "int8 check value {c1}");
}
