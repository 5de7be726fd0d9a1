//! The proxy running inside the test process, and the sink and tap that keep every event
//! and input in memory.

use super::*;

/// The proxy running inside the test, with every input recorded and every event collected.
pub struct InProcessProxy {
    pub port: u16,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    pub events: Arc<Mutex<Vec<Event>>>,
    inputs: Arc<Mutex<Vec<Input>>>,
}

impl InProcessProxy {
    /// Starts it in front of `upstream` with an analysis budget of `budget` bytes; events go to
    /// `sinks` first, then to the collection.
    pub fn start(upstream: u16, budget: usize, mut sinks: Vec<Box<dyn Sink>>) -> InProcessProxy {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let collect = Collect::default();
        let recording = Recording::default();
        let (events, inputs) = (Arc::clone(&collect.0), Arc::clone(&recording.0));
        sinks.push(Box::new(collect));
        let monitor = Monitor::new(Config::default(), sinks).with_tap(Box::new(recording));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let cfg = ProxyConfig {
            upstream: format!("127.0.0.1:{upstream}"),
            analysis_budget: budget,
            ..ProxyConfig::default()
        };
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let shutdown = async move {
                    let _ = stopped.await;
                };
                proxy::run(listener, cfg, monitor, shutdown).await.unwrap();
            });
        });
        InProcessProxy {
            port,
            stop: Some(stop),
            thread: Some(thread),
            events,
            inputs,
        }
    }

    /// Stops it: every event, and every input the analysis was handed.
    pub fn stop(mut self) -> (Vec<Event>, Vec<Input>) {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap();
        let events = self.events.lock().unwrap().clone();
        let inputs = self.inputs.lock().unwrap().clone();
        (events, inputs)
    }
}

/// Keeps every event in memory.
#[derive(Debug, Default, Clone)]
pub struct Collect(pub Arc<Mutex<Vec<Event>>>);

impl Sink for Collect {
    fn event(&mut self, e: &Event) {
        self.0.lock().unwrap().push(e.clone());
    }
}

/// Keeps every input in memory, shareable with the code that started the run.
#[derive(Debug, Default, Clone)]
pub struct Recording(pub Arc<Mutex<Vec<Input>>>);

impl Tap for Recording {
    fn input(&mut self, input: &Input, _secrets: &Secrets<'_>) {
        self.0.lock().unwrap().push(input.clone());
    }
}
