//! TCP proxies the harness controls: one in front of each node's peer port ([`Links`]), and
//! one per node in front of each provider ([`Gates`]).
//!
//! **Who is talking.** Node `i` binds its outgoing peer connections to [`node_ip`]`(i)` =
//! `127.0.0.(10+i)` (`cluster.peer_source_ip`; Linux routes all of 127.0.0.0/8 to the loopback
//! interface, so no set-up is needed), and every member's advertised peer address is the proxy
//! in front of that member's real peer port. A proxy therefore knows both ends of every
//! connection it accepts: the destination is the node it stands in front of, the source is
//! read off the connection's source address ([`node_of`]). Connections from any other address
//! (the harness, a node without a source address) are never blocked or delayed.
//!
//! **Directed links.** Link `i→j` is every connection node `i` opens into node `j`: `i`'s Raft
//! RPCs to `j` and `j`'s answers, and writes `i` forwards to `j`. (Node `j`'s RPCs to `i`
//! travel on link `j→i`.) Each link is [`LinkMode::Open`], [`LinkMode::Stall`] (a silent
//! drop: bytes are held, connections stay open and hang, as a firewall `DROP` or a cut cable
//! behaves; on heal everything held flows on, as TCP retransmission would deliver it) or
//! [`LinkMode::Cut`] (a `REJECT`: open connections are closed, new ones are closed as soon as
//! accepted). A link can also carry latency: every byte either way is delayed by it.
//!
//! **Providers.** Each node reaches the fake Twilio and the SMTP server through its own
//! [`Gate`], which dials the provider from `node_ip(i)`: the provider sees which node sent
//! each request (`RecordedMessage::remote`, `ReceivedMail::client_ip`), which is how the
//! invariant that only the leader pages attributes a page. A gate can be taken down: its port
//! then refuses connections (the provider is unreachable) until it is brought up again.
//!
//! Links change through `watch` channels: a connection subscribes to its link's state when it
//! is accepted and reacts to every change at once (a cut closes it, a stall holds its bytes).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Bytes read at once; also the unit latency is applied to.
const CHUNK: usize = 16 * 1024;
/// Chunks in flight per direction of one connection (held while stalled or delayed); then
/// reading stops and the sender's kernel buffers fill, as with a real slow path.
const IN_FLIGHT_CHUNKS: usize = 64;
/// First octet after 127.0.0. used for node addresses: node `i` is `127.0.0.(10+i)`.
const NODE_IP_BASE: u8 = 10;

/// The loopback address node `id`'s outgoing connections leave from.
///
/// # Panics
/// For ids past 245 (the harness runs a handful of nodes).
pub fn node_ip(id: u64) -> IpAddr {
    let last = u8::try_from(id)
        .ok()
        .and_then(|i| i.checked_add(NODE_IP_BASE))
        .unwrap_or_else(|| panic!("node id {id} has no 127.0.0.x source address"));
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, last))
}

/// The node a connection from `ip` comes from: the inverse of [`node_ip`].
pub fn node_of(ip: IpAddr) -> Option<u64> {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, d] = v4.octets();
            ((a, b, c) == (127, 0, 0) && d > NODE_IP_BASE).then(|| u64::from(d - NODE_IP_BASE))
        }
        IpAddr::V6(_) => None,
    }
}

/// What a link does with its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    Open,
    /// Bytes are held (not lost) until the link opens again; connections hang.
    Stall,
    /// Connections are closed, new ones closed once accepted.
    Cut,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkState {
    pub mode: LinkMode,
    /// Added to every byte, either way.
    pub latency: Duration,
}

impl LinkState {
    const OPEN: LinkState = LinkState {
        mode: LinkMode::Open,
        latency: Duration::ZERO,
    };
}

/// A directed link `(from, to)`.
pub type Link = (u64, u64);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Every link's state. The mutex is held only to find or insert a channel.
#[derive(Default)]
struct Table {
    links: Mutex<HashMap<Link, watch::Sender<LinkState>>>,
}

impl Table {
    fn sender(&self, link: Link) -> watch::Sender<LinkState> {
        lock(&self.links)
            .entry(link)
            .or_insert_with(|| watch::channel(LinkState::OPEN).0)
            .clone()
    }

    fn update(&self, link: Link, change: impl FnOnce(&mut LinkState)) {
        self.sender(link).send_modify(change);
    }
}

/// One proxy per node in front of its peer port; see the module documentation.
pub struct Links {
    table: Arc<Table>,
    /// By destination node id.
    proxies: HashMap<u64, Proxy>,
    /// Every node id, for "all other nodes".
    ids: Vec<u64>,
}

impl Links {
    /// A proxy for each of `ids` on `127.0.0.1` and a port the OS picks; set each backend with
    /// [`Links::set_backend`] before traffic arrives (until then connections are closed).
    pub async fn start(ids: &[u64]) -> io::Result<Links> {
        let table = Arc::new(Table::default());
        let mut proxies = HashMap::new();
        for &to in ids {
            let route_table = table.clone();
            let route: Route = Arc::new(move |from: Option<u64>| match from {
                Some(from) => route_table.sender((from, to)).subscribe(),
                // Not a node: the harness, or a node without a source address.
                None => watch::channel(LinkState::OPEN).1,
            });
            proxies.insert(to, Proxy::start(None, route).await?);
        }
        Ok(Links {
            table,
            proxies,
            ids: ids.to_vec(),
        })
    }

    /// The address standing for node `to`'s peer port (what the members advertise).
    pub fn addr(&self, to: u64) -> Option<SocketAddr> {
        self.proxies.get(&to).map(|p| p.addr)
    }

    /// Where node `to`'s proxy forwards: its real peer port.
    pub fn set_backend(&self, to: u64, backend: SocketAddr) {
        if let Some(p) = self.proxies.get(&to) {
            *lock(&p.backend) = Some(backend);
        }
    }

    pub fn state(&self, link: Link) -> LinkState {
        *self.table.sender(link).borrow()
    }

    /// Set link `from→to`'s mode (its latency stays).
    pub fn set(&self, (from, to): Link, mode: LinkMode) {
        self.table.update((from, to), |s| s.mode = mode);
    }

    /// Every byte on link `from→to`, either way, is delayed by `latency` (zero: none).
    pub fn set_latency(&self, (from, to): Link, latency: Duration) {
        self.table.update((from, to), |s| s.latency = latency);
    }

    /// Both directions between `a` and `b`.
    pub fn set_both(&self, a: u64, b: u64, mode: LinkMode) {
        self.set((a, b), mode);
        self.set((b, a), mode);
    }

    /// Split the nodes into `groups`: every link between two groups, either way, gets `mode`;
    /// links inside a group are left as they are. A node in no group is in a group of its own.
    pub fn partition(&self, groups: &[Vec<u64>], mode: LinkMode) {
        let group_of = |id: u64| groups.iter().position(|g| g.contains(&id));
        for &a in &self.ids {
            for &b in &self.ids {
                let apart = match (group_of(a), group_of(b)) {
                    (Some(x), Some(y)) => x != y,
                    _ => a != b,
                };
                if apart {
                    self.set((a, b), mode);
                }
            }
        }
    }

    /// Every link out of `node` gets `mode`; links into it are left open (an asymmetric
    /// partition: it hears the others, they do not hear it).
    pub fn isolate_outgoing(&self, node: u64, mode: LinkMode) {
        for &other in self.ids.iter().filter(|&&o| o != node) {
            self.set((node, other), mode);
        }
    }

    /// Every link between every two nodes gets `latency`.
    pub fn set_latency_everywhere(&self, latency: Duration) {
        for &a in &self.ids {
            for &b in self.ids.iter().filter(|&&b| b != a) {
                self.set_latency((a, b), latency);
            }
        }
    }

    /// Every link open and without latency.
    pub fn heal(&self) {
        for &a in &self.ids {
            for &b in &self.ids {
                self.table.update((a, b), |s| *s = LinkState::OPEN);
            }
        }
    }

    /// Links that are not open, for logs.
    pub fn describe(&self) -> String {
        let mut out = Vec::new();
        for &a in &self.ids {
            for &b in &self.ids {
                let s = self.state((a, b));
                if s != LinkState::OPEN {
                    out.push(format!(
                        "{a}->{b} {:?} +{}ms",
                        s.mode,
                        s.latency.as_millis()
                    ));
                }
            }
        }
        if out.is_empty() {
            "all links open".into()
        } else {
            out.join(", ")
        }
    }
}

/// One node's way to a provider; see the module documentation.
pub struct Gate {
    proxy: Proxy,
    state: watch::Sender<LinkState>,
    /// The accept loop while up; `None` while down (the port refuses connections).
    listening: Mutex<Option<JoinHandle<()>>>,
    route: Route,
}

impl Gate {
    /// A gate on `127.0.0.1` and a port the OS picks, forwarding to `upstream` from
    /// `node_ip(node)`.
    pub async fn start(node: u64, upstream: SocketAddr) -> io::Result<Gate> {
        let state = watch::channel(LinkState::OPEN).0;
        let rx = state.subscribe();
        let route: Route = Arc::new(move |_from| rx.clone());
        let proxy = Proxy::start(Some(node_ip(node)), route.clone()).await?;
        *lock(&proxy.backend) = Some(upstream);
        let listening = Mutex::new(lock(&proxy.accepting).take());
        Ok(Gate {
            proxy,
            state,
            listening,
            route,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.proxy.addr
    }

    pub fn is_up(&self) -> bool {
        lock(&self.listening).is_some()
    }

    /// Close the port (connecting is refused) and every connection through it.
    pub async fn down(&self) {
        self.state.send_modify(|s| s.mode = LinkMode::Cut);
        let task = lock(&self.listening).take();
        if let Some(task) = task {
            task.abort();
            // Returns once the task and its listener are dropped.
            let _ = task.await;
        }
    }

    /// Listen on the same port again.
    pub async fn up(&self) -> io::Result<()> {
        if self.is_up() {
            return Ok(());
        }
        let listener = TcpListener::bind(self.proxy.addr).await?;
        self.state.send_modify(|s| s.mode = LinkMode::Open);
        let task = tokio::spawn(accept_loop(
            listener,
            self.proxy.backend.clone(),
            self.proxy.bind_upstream,
            self.route.clone(),
        ));
        *lock(&self.listening) = Some(task);
        Ok(())
    }

    /// Delay every byte through this gate, either way.
    pub fn set_latency(&self, latency: Duration) {
        self.state.send_modify(|s| s.latency = latency);
    }
}

impl Drop for Gate {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.listening).take() {
            task.abort();
        }
    }
}

/// A gate per node in front of one provider.
pub struct Gates {
    by_node: HashMap<u64, Gate>,
}

impl Gates {
    pub async fn start(ids: &[u64], upstream: SocketAddr) -> io::Result<Gates> {
        let mut by_node = HashMap::new();
        for &id in ids {
            by_node.insert(id, Gate::start(id, upstream).await?);
        }
        Ok(Gates { by_node })
    }

    pub fn get(&self, node: u64) -> Option<&Gate> {
        self.by_node.get(&node)
    }

    /// The provider is unreachable from every node.
    pub async fn down(&self) {
        for g in self.by_node.values() {
            g.down().await;
        }
    }

    pub async fn up(&self) -> io::Result<()> {
        for g in self.by_node.values() {
            g.up().await?;
        }
        Ok(())
    }
}

/// The link state a connection from a source node (if known) follows.
type Route = Arc<dyn Fn(Option<u64>) -> watch::Receiver<LinkState> + Send + Sync>;

/// A listener forwarding to a backend. Its accept loop (and with it every connection) stops
/// when it is dropped.
struct Proxy {
    addr: SocketAddr,
    /// Where to forward; `None`: not known yet (connections are closed).
    backend: Arc<Mutex<Option<SocketAddr>>>,
    bind_upstream: Option<IpAddr>,
    /// The accept loop, until a [`Gate`] takes it over.
    accepting: Mutex<Option<JoinHandle<()>>>,
}

impl Proxy {
    async fn start(bind_upstream: Option<IpAddr>, route: Route) -> io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let backend = Arc::new(Mutex::new(None));
        let task = tokio::spawn(accept_loop(listener, backend.clone(), bind_upstream, route));
        Ok(Proxy {
            addr,
            backend,
            bind_upstream,
            accepting: Mutex::new(Some(task)),
        })
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.accepting).take() {
            task.abort();
        }
    }
}

/// Accept connections and forward each as its link says. Connection tasks live in a
/// `JoinSet` owned by this task: aborting it closes them all.
async fn accept_loop(
    listener: TcpListener,
    backend: Arc<Mutex<Option<SocketAddr>>>,
    bind_upstream: Option<IpAddr>,
    route: Route,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, peer)) = accepted else { continue };
                let link = route(node_of(peer.ip()));
                if link.borrow().mode == LinkMode::Cut {
                    continue; // dropped: closed at once
                }
                let Some(to) = *lock(&backend) else { continue };
                connections.spawn(forward(client, to, bind_upstream, link));
            }
            Some(_done) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn connect(to: SocketAddr, from: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = match to {
        SocketAddr::V4(_) => TcpSocket::new_v4()?,
        SocketAddr::V6(_) => TcpSocket::new_v6()?,
    };
    if let Some(ip) = from {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(to).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Pipe `client` to `to` both ways under `link`, until both sides are done or the link is cut.
async fn forward(
    client: TcpStream,
    to: SocketAddr,
    from: Option<IpAddr>,
    link: watch::Receiver<LinkState>,
) {
    let _ = client.set_nodelay(true);
    let server = tokio::select! {
        s = connect(to, from) => match s {
            Ok(s) => s,
            Err(_) => return, // the backend is down: close the client
        },
        () = cut(link.clone()) => return,
    };
    let (client_rd, client_wr) = client.into_split();
    let (server_rd, server_wr) = server.into_split();
    let pipes = both(
        pipe(client_rd, server_wr, link.clone()),
        pipe(server_rd, client_wr, link.clone()),
    );
    tokio::select! {
        _ = pipes => {}
        // Dropping both pipes closes both sockets.
        () = cut(link) => {}
    }
}

async fn both(a: impl std::future::Future<Output = ()>, b: impl std::future::Future<Output = ()>) {
    tokio::join!(a, b);
}

/// Resolves once the link is cut.
async fn cut(mut link: watch::Receiver<LinkState>) {
    loop {
        if link.borrow_and_update().mode == LinkMode::Cut {
            return;
        }
        if link.changed().await.is_err() {
            // The table outlives every proxy; a dropped sender means shutting down.
            std::future::pending::<()>().await;
        }
    }
}

/// One direction: read chunks as they come, write each once the link is open and its
/// latency has passed since it was read. On end of input, the write side is shut down.
async fn pipe(mut rd: OwnedReadHalf, mut wr: OwnedWriteHalf, link: watch::Receiver<LinkState>) {
    let (tx, mut rx) = mpsc::channel::<(Instant, Vec<u8>)>(IN_FLIGHT_CHUNKS);
    let reader = async move {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if tx.send((Instant::now(), buf[..n].to_vec())).await.is_err() {
                        return;
                    }
                }
            }
        }
    };
    let writer = async move {
        let mut link = link;
        while let Some((read_at, bytes)) = rx.recv().await {
            let latency = loop {
                let state = *link.borrow_and_update();
                match state.mode {
                    LinkMode::Open => break state.latency,
                    LinkMode::Cut => return,
                    LinkMode::Stall => {
                        if link.changed().await.is_err() {
                            return;
                        }
                    }
                }
            };
            tokio::time::sleep_until(read_at + latency).await;
            if wr.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = wr.shutdown().await;
    };
    tokio::join!(reader, writer);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_addresses_round_trip() {
        assert_eq!(node_ip(1), IpAddr::V4(Ipv4Addr::new(127, 0, 0, 11)));
        for id in [1, 2, 5, 200] {
            assert_eq!(node_of(node_ip(id)), Some(id));
        }
        assert_eq!(node_of(IpAddr::V4(Ipv4Addr::LOCALHOST)), None);
        assert_eq!(node_of(IpAddr::V4(Ipv4Addr::new(127, 0, 0, 10))), None);
        assert_eq!(node_of(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 11))), None);
    }

    /// An echo server standing in for a node's peer port.
    async fn echo() -> SocketAddr {
        let l = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                tokio::spawn(async move {
                    let (mut r, mut w) = s.split();
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                });
            }
        });
        addr
    }

    async fn dial(to: SocketAddr, from: u64) -> TcpStream {
        connect(to, Some(node_ip(from))).await.expect("connect")
    }

    async fn round_trip(s: &mut TcpStream, wait: Duration) -> Option<Duration> {
        let started = Instant::now();
        s.write_all(b"ping").await.ok()?;
        let mut buf = [0u8; 4];
        match tokio::time::timeout(wait, s.read_exact(&mut buf)).await {
            Ok(Ok(_)) if &buf == b"ping" => Some(started.elapsed()),
            _ => None,
        }
    }

    #[tokio::test]
    async fn links_are_directed_and_stall_cut_and_delay() {
        let links = Links::start(&[1, 2]).await.expect("proxies");
        links.set_backend(2, echo().await);
        let into_2 = links.addr(2).expect("proxy of node 2");
        let short = Duration::from_millis(300);

        let mut from_1 = dial(into_2, 1).await;
        assert!(round_trip(&mut from_1, short).await.is_some(), "open");

        // 2->1 blocked says nothing about 1->2.
        links.set((2, 1), LinkMode::Cut);
        assert!(
            round_trip(&mut from_1, short).await.is_some(),
            "other direction"
        );

        // Stall: held, then delivered on heal.
        links.set((1, 2), LinkMode::Stall);
        assert!(round_trip(&mut from_1, short).await.is_none(), "stalled");
        links.heal();
        let mut buf = [0u8; 4];
        tokio::time::timeout(short, from_1.read_exact(&mut buf))
            .await
            .expect("held bytes arrive after the heal")
            .expect("read");
        assert_eq!(&buf, b"ping");

        // Latency either way: a round trip takes at least twice as long.
        links.set_latency((1, 2), Duration::from_millis(100));
        let rtt = round_trip(&mut from_1, Duration::from_secs(2)).await;
        assert!(
            rtt.is_some_and(|d| d >= Duration::from_millis(200)),
            "{rtt:?}"
        );
        links.heal();

        // Cut closes the open connection and every new one.
        links.set((1, 2), LinkMode::Cut);
        let mut buf = [0u8; 1];
        let n = tokio::time::timeout(short, from_1.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed: {n:?}");
        let mut again = dial(into_2, 1).await;
        let n = tokio::time::timeout(short, again.read(&mut buf)).await;
        assert!(matches!(n, Ok(Ok(0)) | Ok(Err(_))), "closed at once: {n:?}");
        // Another source is not affected.
        let mut from_3 = dial(into_2, 3).await;
        assert!(round_trip(&mut from_3, short).await.is_some());
        links.heal();
        let mut healed = dial(into_2, 1).await;
        assert!(round_trip(&mut healed, short).await.is_some(), "healed");
    }

    #[tokio::test]
    async fn a_gate_dials_from_its_node_and_refuses_while_down() {
        let upstream = TcpListener::bind(("127.0.0.1", 0)).await.expect("bind");
        let gate = Gate::start(4, upstream.local_addr().expect("addr"))
            .await
            .expect("gate");
        let _client = TcpStream::connect(gate.addr()).await.expect("connect");
        let (_, peer) = upstream.accept().await.expect("accept");
        assert_eq!(node_of(peer.ip()), Some(4));
        gate.down().await;
        assert!(TcpStream::connect(gate.addr()).await.is_err(), "refused");
        gate.up().await.expect("up again");
        let _client = TcpStream::connect(gate.addr()).await.expect("connect");
        let (_, peer) = upstream.accept().await.expect("accept");
        assert_eq!(node_of(peer.ip()), Some(4));
    }
}
