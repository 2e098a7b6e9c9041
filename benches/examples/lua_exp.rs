use redis::aio::ConnectionManager;
use std::time::Duration;
use t87s::{Codec, Postcard};
use t87s_benches::{redis_url, Payload};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "pair".to_owned());
    let n: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(20_000);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let prefix = format!("t87s-exp-{}", std::process::id());
    rt.block_on(async {
        let client = redis::Client::open(redis_url()).unwrap();
        let mut bare = client.get_connection_manager().await.unwrap();
        let key = format!("{prefix}:bare");
        let rest: Vec<String> = (0..5).map(|i| format!("{prefix}:rest:{i}")).collect();
        let _: () = redis::cmd("SET").arg(&key).arg(Postcard.encode(&Payload::new()).unwrap()).query_async(&mut bare).await.unwrap();
        let _: () = redis::cmd("SET").arg(&rest[0]).arg(1_764_892_800_000_123_u64).query_async(&mut bare).await.unwrap();
        let code = r#"
local v = redis.call('MGET', KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5], KEYS[6])
local floor = tonumber(v[2]) or 0
for i = 3, 6 do local m = tonumber(v[i]); if m and m > floor then floor = m end end
if floor > tonumber(ARGV[1]) then return 0 end
return v[1]
"#;
let script = redis::Script::new(code);
        let sha = script.get_hash().to_owned();
        let _: () = redis::cmd("SCRIPT").arg("LOAD").arg(code).query_async(&mut bare).await.map(|_: String| ()).unwrap();
        let info = client.get_connection_info().clone();
        let r3 = info.clone().set_redis_settings(info.redis_settings().clone().set_protocol(redis::ProtocolVersion::RESP3));
        let c3 = redis::Client::open(r3).unwrap();
        let pushes = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let p2 = pushes.clone();
        let cfg = redis::AsyncConnectionConfig::new().set_response_timeout(None).set_push_sender(move |info: redis::PushInfo| { p2.fetch_add(1, std::sync::atomic::Ordering::SeqCst); eprintln!("push {:?}", info.kind); Ok::<(), redis::aio::SendError>(()) });
        let mut t3 = c3.get_multiplexed_async_connection_with_config(&cfg).await.unwrap();
        let ok: redis::Value = redis::cmd("CLIENT").arg("TRACKING").arg("ON").arg("BCAST").arg("PREFIX").arg(format!("{prefix}:rest")).query_async(&mut t3).await.unwrap();
        eprintln!("tracking: {ok:?}");
        let ok2: redis::RedisResult<redis::Value> = redis::cmd("CLIENT").arg("TRACKING").arg("ON").arg("BCAST").arg("PREFIX").arg(format!("{prefix}:rest")).query_async(&mut t3).await;
        eprintln!("tracking again: {ok2:?}");
        let _: () = redis::cmd("SET").arg(&rest[1]).arg(5).query_async(&mut bare).await.unwrap();
        let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut t3).await.unwrap();
        eprintln!("pushes after SET + GET: {}", pushes.load(std::sync::atomic::Ordering::SeqCst));
        std::hint::black_box(v);
        let mut m2 = client.get_multiplexed_async_connection().await.unwrap();
        let mut m3 = c3.get_multiplexed_async_connection().await.unwrap();
        let _: redis::Value = redis::cmd("CLIENT").arg("TRACKING").arg("ON").arg("BCAST").arg("PREFIX").arg(format!("{prefix}:zzz")).query_async(&mut m3).await.unwrap();
        let mut times: [Vec<Duration>; 6] = Default::default();
        for round in 0..n {
            for turn in 0..6 {
                let way = (round as usize + turn) % 6;
                if mode != "pair" && way != mode.parse::<usize>().unwrap() { continue; }
                let start = std::time::Instant::now();
                match way {
                    0 => { let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut bare).await.unwrap(); std::hint::black_box(v); }
                    1 => { let v: Vec<Option<Vec<u8>>> = redis::cmd("MGET").arg(&key).arg(&rest).query_async(&mut bare).await.unwrap(); std::hint::black_box(v); }
                    4 => { let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut m2).await.unwrap(); std::hint::black_box(v); }
                    5 => { let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut m3).await.unwrap(); std::hint::black_box(v); }
                    3 => { let v: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut t3).await.unwrap(); std::hint::black_box(v); }
                    _ => { let v: redis::Value = redis::cmd("EVALSHA").arg(&sha).arg(6).arg(&key).arg(&rest).arg(1_864_892_800_000_123_u64).query_async(&mut bare).await.unwrap(); std::hint::black_box(v); }
                }
                times[way].push(start.elapsed());
            }
        }
        if mode == "pair" {
        let [g, m, e, g3, gm2, gm3] = times.map(|mut t| { t.sort(); t[t.len() / 2] });
        println!("GET {g:?} MGET6 {m:?} (+{:?}) EVALSHA {e:?} (+{:?}) GET on RESP3 tracked {g3:?} mplex2 {gm2:?} mplex3 {gm3:?}", m.saturating_sub(g), e.saturating_sub(g));
        }
    });
}
