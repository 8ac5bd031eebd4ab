//! Matvec throughput per weight type and ISA, in GB/s of weight bytes read, next to the
//! machine's streaming-read bandwidth (decode is bound by it).
//!
//! Shapes (n = 2816 inputs): 2816x2112, eight experts 2816x1408x8 (11264 rows), and the
//! 2816x262144 output head. `matvec/<type>/<isa>/<rows>` is one thread;
//! `matvec2t/<type>/<isa>/<rows>` splits the rows over 2 threads (best ISA only).
//! `bandwidth/sum_1gib/{1t,2t}` sums a 1 GiB buffer. `gemm8/q4_k/...` compares one 8-column
//! gemm with 8 matvecs.
//!
//! `matvec/<rare type>/<isa>/2112`: the other quantized types, one thread, small shape.
//!
//! `quantize/<q8_0|q8_k>/<isa>`: one activation row of 2816 floats quantized per ISA.
//!
//! Quick run: `cargo bench --bench kernels -- matvec/q4_k` (filters by name).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use lode::gguf::GgmlType;
use lode::kernels::{Isa, KernelTable};

const N: usize = 2816;
const SHAPES: &[usize] = &[2112, 1408 * 8, 262_144];
const TYPES: &[GgmlType] = &[
    GgmlType::Q4K,
    GgmlType::Q5_0,
    GgmlType::Q6K,
    GgmlType::Q8_0,
    GgmlType::Q5K,
];
/// Types rare in Gemma GGUFs: one thread, the small shape only, every ISA.
const OTHER_TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_1,
    GgmlType::IQ4NL,
    GgmlType::MXFP4,
    GgmlType::Q2K,
    GgmlType::Q3K,
    GgmlType::IQ4XS,
];

/// Weight bytes for `rows` rows: pseudo-random quants with small finite f16 scales.
fn weights(t: GgmlType, rows: usize) -> Vec<u8> {
    let len = t.row_bytes(N as u64).unwrap() as usize * rows;
    let mut v = vec![0u8; len];
    let mut s = 0x243f_6a88_85a3_08d3u64;
    for c in v.chunks_mut(8) {
        s = s
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let b = s.to_le_bytes();
        c.copy_from_slice(&b[..c.len()]);
    }
    let scale_at: &[usize] = match t {
        GgmlType::Q4K | GgmlType::Q5K | GgmlType::Q4_1 | GgmlType::Q5_1 => &[0, 2],
        GgmlType::Q6K => &[208],
        GgmlType::Q2K => &[80, 82],
        GgmlType::Q3K => &[108],
        GgmlType::MXFP4 => &[],
        _ => &[0],
    };
    let d = half::f16::from_f32(0.01).to_bits().to_le_bytes();
    for blk in v.chunks_exact_mut(t.block_bytes()) {
        for &o in scale_at {
            blk[o..o + 2].copy_from_slice(&d);
        }
    }
    v
}

fn activation(k: &KernelTable, t: GgmlType) -> Vec<u8> {
    let act = KernelTable::vec_dot_type(t).unwrap();
    let x: Vec<f32> = (0..N)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
        .collect();
    let mut a = vec![0u8; act.row_bytes(N as u64).unwrap() as usize];
    k.quantize_row(act, &x, &mut a).unwrap();
    a
}

fn isas() -> Vec<&'static KernelTable> {
    Isa::ALL
        .iter()
        .filter_map(|&i| KernelTable::for_isa(i))
        .collect()
}

fn matvec_2t(
    pool: &rayon::ThreadPool,
    k: &KernelTable,
    t: GgmlType,
    w: &[u8],
    rows: usize,
    a: &[u8],
    out: &mut [f32],
) {
    let rb = w.len() / rows;
    let half = rows / 2;
    let (w0, w1) = w.split_at(half * rb);
    let (o0, o1) = out.split_at_mut(half);
    pool.scope(|s| {
        s.spawn(|_| k.matvec(t, N, w0, half, a, o0).unwrap());
        s.spawn(|_| k.matvec(t, N, w1, rows - half, a, o1).unwrap());
    });
}

fn bench_matvec(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let best = KernelTable::detect();
    for &t in TYPES {
        let name = t.name().to_lowercase();
        for &rows in SHAPES {
            let w = weights(t, rows);
            let mut out = vec![0f32; rows];
            let mut g = c.benchmark_group(format!("matvec/{name}"));
            g.throughput(Throughput::Bytes(w.len() as u64));
            for k in isas() {
                // scalar is only a baseline: the small shape is enough
                if k.isa() == Isa::Scalar && rows != SHAPES[0] {
                    continue;
                }
                let a = activation(k, t);
                g.bench_function(format!("{}/{rows}", k.isa()), |b| {
                    b.iter(|| k.matvec(t, N, black_box(&w), rows, &a, &mut out).unwrap())
                });
            }
            g.finish();
            let mut g = c.benchmark_group(format!("matvec2t/{name}"));
            g.throughput(Throughput::Bytes(w.len() as u64));
            let a = activation(best, t);
            g.bench_function(format!("{}/{rows}", best.isa()), |b| {
                b.iter(|| matvec_2t(&pool, best, t, black_box(&w), rows, &a, &mut out))
            });
            g.finish();
        }
    }
}

fn bench_other(c: &mut Criterion) {
    let rows = SHAPES[0];
    for &t in OTHER_TYPES {
        let w = weights(t, rows);
        let mut out = vec![0f32; rows];
        let mut g = c.benchmark_group(format!("matvec/{}", t.name().to_lowercase()));
        g.throughput(Throughput::Bytes(w.len() as u64));
        for k in isas() {
            let a = activation(k, t);
            g.bench_function(format!("{}/{rows}", k.isa()), |b| {
                b.iter(|| k.matvec(t, N, black_box(&w), rows, &a, &mut out).unwrap())
            });
        }
        g.finish();
    }
}

fn bench_gemm8(c: &mut Criterion) {
    let t = GgmlType::Q4K;
    let rows = SHAPES[0];
    let w = weights(t, rows);
    let k = KernelTable::detect();
    let a1 = activation(k, t);
    let a: Vec<u8> = (0..8).flat_map(|_| a1.iter().copied()).collect();
    let mut out = vec![0f32; rows * 8];
    let mut g = c.benchmark_group("gemm8/q4_k");
    g.throughput(Throughput::Bytes(w.len() as u64 * 8));
    g.bench_function(format!("{}/gemm_8cols/{rows}", k.isa()), |b| {
        b.iter(|| {
            k.gemm(t, N, black_box(&w), rows, &a, 8, &mut out, rows)
                .unwrap()
        })
    });
    g.bench_function(format!("{}/8x_matvec/{rows}", k.isa()), |b| {
        b.iter(|| {
            for (c, o) in out.chunks_exact_mut(rows).enumerate() {
                k.matvec(t, N, black_box(&w), rows, &a[c * a1.len()..][..a1.len()], o)
                    .unwrap();
            }
        })
    });
    g.finish();
}

fn bench_quantize(c: &mut Criterion) {
    let x: Vec<f32> = (0..N)
        .map(|i| ((i * 37 % 101) as f32 - 50.0) * 0.01)
        .collect();
    for act in [GgmlType::Q8_0, GgmlType::Q8K] {
        let mut out = vec![0u8; act.row_bytes(N as u64).unwrap() as usize];
        let mut g = c.benchmark_group(format!("quantize/{}", act.name().to_lowercase()));
        g.throughput(Throughput::Bytes(4 * N as u64));
        for k in isas() {
            g.bench_function(k.isa().name(), |b| {
                b.iter(|| k.quantize_row(act, black_box(&x), &mut out).unwrap())
            });
        }
        g.finish();
    }
}

fn sum_u64(b: &[u64]) -> u64 {
    b.chunks_exact(8)
        .fold([0u64; 8], |mut acc, c| {
            for i in 0..8 {
                acc[i] = acc[i].wrapping_add(c[i]);
            }
            acc
        })
        .iter()
        .fold(0, |s, v| s.wrapping_add(*v))
}

fn bench_bandwidth(c: &mut Criterion) {
    let buf: Vec<u64> = (0..(1usize << 30) / 8).map(|i| i as u64).collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("bandwidth");
    g.throughput(Throughput::Bytes(1 << 30));
    g.bench_function("sum_1gib/1t", |b| b.iter(|| sum_u64(black_box(&buf))));
    g.bench_function("sum_1gib/2t", |b| {
        b.iter(|| {
            let (x, y) = buf.split_at(buf.len() / 2);
            let (mut s0, mut s1) = (0, 0);
            pool.scope(|s| {
                s.spawn(|_| s0 = sum_u64(black_box(x)));
                s.spawn(|_| s1 = sum_u64(black_box(y)));
            });
            s0.wrapping_add(s1)
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = bench_bandwidth, bench_matvec, bench_other, bench_gemm8, bench_quantize
}
criterion_main!(benches);
