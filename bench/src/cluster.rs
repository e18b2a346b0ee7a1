//! The cluster figures of issue 14: tiny tasks and W2 through NATS
//! JetStream with two worker hosts on this machine, beside the local pool;
//! per-chunk overhead; failover time after a host is SIGKILLed.

use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A JetStream server on a free loopback port, killed on drop.
struct Server {
    url: String,
    child: Child,
    _dir: TempDir,
}

/// A directory removed on drop.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn server() -> Server {
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("mpwasm-bench-nats-{}", std::process::id()));
    let child = Command::new("nats-server")
        .args(["-js", "-a", "127.0.0.1", "-p", &port.to_string(), "-sd"])
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("nats-server (scripts/setup.sh installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nats-server did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    Server {
        url: format!("nats://127.0.0.1:{port}"),
        child,
        _dir: TempDir(dir),
    }
}

/// A worker host, killed on drop.
struct Host(Child);

impl Drop for Host {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn host(mpwasm: &Path, url: &str, slots: usize) -> Host {
    Host(
        Command::new(mpwasm)
            .args(["serve", "--cluster", url, "--ack-wait", "1s", "--slots"])
            .arg(slots.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mpwasm serve"),
    )
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64()
}

/// Prints the cluster rows.
pub(crate) fn run(mpwasm: &Path, square: &Path, primes: &Path, kit: &Path) {
    let nats = server();
    let hosts = [host(mpwasm, &nats.url, 1), host(mpwasm, &nats.url, 1)];
    let cluster = |guest: &Path, chunk: usize| {
        mpwasm::Pool::builder(guest)
            .cluster(&nats.url)
            .processes(4)
            .chunksize(chunk)
            .build()
            .expect("cluster pool")
    };
    let local = |guest: &Path, chunk: usize| {
        mpwasm::Pool::builder(guest)
            .processes(2)
            .chunksize(chunk)
            .build()
            .expect("local pool")
    };
    // Warm up: the hosts fetch and compile the guests.
    let warm = cluster(square, 10);
    let _: Vec<i64> = warm.map("square", 0..100i64).unwrap();
    drop(warm);
    let n = 2_000_000usize;
    for chunk in [10_000, 50_000] {
        let pool = cluster(square, chunk);
        let (d, out) = super::time(|| pool.map::<i64, i64>("square", 0..n as i64).unwrap());
        assert_eq!(out[n - 1], (n as i64 - 1) * (n as i64 - 1));
        let lp = local(square, chunk);
        let (ld, _) = super::time(|| lp.map::<i64, i64>("square", 0..n as i64).unwrap());
        println!(
            "| C1 | tiny tasks: map(square, 0..2M), chunks of {chunk}, 2 hosts × 1 slot | {:.0} tasks/s | local Pool(2): {:.0} tasks/s | | | ≥ 1 M tasks/s |",
            rate(n, d),
            rate(n, ld)
        );
    }
    let pool = cluster(primes, 1);
    let (d, total) = super::time(|| {
        pool.starmap::<(u64, u64), u64>("count_primes", super::chunks())
            .unwrap()
            .iter()
            .sum::<u64>()
    });
    assert_eq!(total, 148_933);
    let lp = local(primes, 1);
    let (ld, _) = super::time(|| {
        lp.starmap::<(u64, u64), u64>("count_primes", super::chunks())
            .unwrap()
    });
    println!(
        "| C2 | W2 count_primes, 64 chunks of [0, 2M), 2 hosts × 1 slot | {:.3} s | local Pool(2): {:.3} s | | | |",
        d.as_secs_f64(),
        ld.as_secs_f64()
    );
    let chunks = 400usize;
    let pool = cluster(square, 1);
    let (d, _) = super::time(|| pool.map::<i64, i64>("square", 0..chunks as i64).unwrap());
    let lp = local(square, 1);
    let (ld, _) = super::time(|| lp.map::<i64, i64>("square", 0..chunks as i64).unwrap());
    println!(
        "| C3 | per-chunk overhead: 400 one-input chunks, 4 in flight, 2 hosts | {:.2} ms a chunk | local Pool(2): {:.3} ms a chunk | | | |",
        d.as_secs_f64() * 1e3 / chunks as f64,
        ld.as_secs_f64() * 1e3 / chunks as f64
    );
    drop(hosts);
    // Failover: one host runs a 1 s task and is SIGKILLed 300 ms in; a
    // second (warm) host is waiting. Failover = kill → result, less the
    // task's own 1 s.
    let mut times = Vec::new();
    for _ in 0..3 {
        let mut a = host(mpwasm, &nats.url, 1);
        let pool = cluster(kit, 1);
        let _: u64 = pool.apply("sleep_ms", 1u64).unwrap(); // a is warm
        let result = pool.apply_async::<_, u64>("sleep_ms", 1000u64).unwrap();
        std::thread::sleep(Duration::from_millis(300));
        let b = host(mpwasm, &nats.url, 1);
        std::thread::sleep(Duration::from_millis(200));
        let _ = a.0.kill();
        let killed = Instant::now();
        assert_eq!(result.get(Some(Duration::from_secs(30))).unwrap(), 1000);
        times.push(killed.elapsed().as_secs_f64() - 1.0);
        let _ = a.0.wait();
        drop(b);
    }
    println!(
        "| C4 | failover: host SIGKILLed mid-task, AckWait 1 s, +WPI every 333 ms | {:.2} s (kill → redelivered and done, less the task) | | | | ≤ AckWait + one heartbeat |",
        super::median(times)
    );
}
