//! The observer's page in a real browser: headless Chromium loads it from
//! a running tree, the tree renders, a child crashes, and the page shows
//! its restart count change. A screenshot is left in
//! `target/observer-browser.png` for people to look at.
//!
//! The browser is Debian's `chromium` (`.ci/run` installs it). This test
//! fails, never skips, when the browser cannot run: set `CHROMIUM` to its
//! path if it is not on `PATH` as `chromium`.
//!
//! Chromium is driven with `--dump-dom` (the DOM after the page's scripts
//! ran, with a virtual-time budget so that its timers fire) and
//! `--screenshot`: no DevTools client needed.

mod observer_support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use observer_support::{demo_tree, LIMIT};
use ractor_otp::observer::Observer;

/// How long one browser run may take before it is killed.
const BROWSER_LIMIT: Duration = Duration::from_secs(60);

/// Page loads tried while waiting for the page to show a change.
const ATTEMPTS: usize = 10;

/// The browser to run: `$CHROMIUM`, else `chromium` (Debian's package).
fn browser() -> PathBuf {
    if let Some(path) = std::env::var_os("CHROMIUM") {
        return PathBuf::from(path);
    }
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(dir) = std::env::var_os("PATH")
            .iter()
            .flat_map(std::env::split_paths)
            .find(|dir| dir.join(name).is_file())
        {
            return dir.join(name);
        }
    }
    panic!("no headless browser found: install Debian's `chromium` package (apt-get install -y chromium) or set CHROMIUM to a Chromium binary; this test does not skip");
}

/// Runs headless Chromium on `url` with `args`; its standard output.
async fn chromium(url: &str, args: &[&str], profile: &Path) -> String {
    let mut command = tokio::process::Command::new(browser());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--hide-scrollbars",
            // Virtual time runs while the page is idle and waits for its
            // fetches: the first views are drawn well within this, and the
            // page opens its long-lived event stream only after it (an open
            // stream would hold virtual time still).
            "--virtual-time-budget=1200",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_LIMIT, command.output())
        .await
        .unwrap_or_else(|_| panic!("chromium did not finish within {BROWSER_LIMIT:?}"))
        .unwrap_or_else(|e| {
            panic!("chromium could not run ({e}); install Debian's `chromium` package")
        });
    assert!(
        output.status.success(),
        "chromium failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The restart count the page shows for the child at `path`, if it shows
/// that child as running.
fn shown_restarts(dom: &str, path: &str) -> Option<u64> {
    let marker = format!("data-path=\"{path}\" data-status=\"running\" data-restarts=\"");
    let start = dom.find(&marker)? + marker.len();
    let digits: String = dom[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_shows_a_crashed_child_restarting_in_a_real_browser() {
    let (sup, pool) = demo_tree().await;
    let observer = Observer::builder()
        .supervisor(&sup)
        .pool("hashers", &pool)
        .serve("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the observer serves");
    let url = observer.url();
    let root = sup.cell().get_name().expect("named root");
    let db = format!("{root}/storage/db");
    for n in 0..40 {
        pool.cast(n).expect("the pool takes it");
    }
    let target = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target");
    let profile = target.join(format!("observer-browser-profile-{}", std::process::id()));
    std::fs::create_dir_all(&profile).expect("a browser profile directory");

    let dom = chromium(&url, &["--dump-dom"], &profile).await;
    assert_eq!(
        shown_restarts(&dom, &db),
        Some(0),
        "the page renders the tree with db running, never restarted; page:\n{dom}"
    );
    assert!(
        dom.contains("data-pool=\"hashers\""),
        "the page renders the pool"
    );

    let db_ref = sup
        .supervisor_child("storage")
        .expect("storage runs")
        .child::<String>("db")
        .expect("db");
    db_ref
        .cast("crash:pulled the plug".into())
        .expect("db runs");

    let mut last = String::new();
    let mut shown = None;
    for _ in 0..ATTEMPTS {
        last = chromium(&url, &["--dump-dom"], &profile).await;
        shown = shown_restarts(&last, &db);
        if shown == Some(1) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        shown,
        Some(1),
        "after the crash the page shows db restarted once; last page:\n{last}"
    );
    assert!(
        last.contains("pulled the plug"),
        "the page shows the last exit reason"
    );

    let shot = target.join("observer-browser.png");
    let _ = std::fs::remove_file(&shot);
    chromium(
        &url,
        &[
            "--window-size=1400,900",
            &format!("--screenshot={}", shot.display()),
        ],
        &profile,
    )
    .await;
    let png = std::fs::read(&shot).expect("chromium wrote the screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    eprintln!("screenshot: {}", shot.display());

    let _ = std::fs::remove_dir_all(&profile);
    observer.shutdown().await;
    sup.stop(Some(LIMIT)).await.expect("the tree stops");
}
