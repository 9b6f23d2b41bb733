//! Socket chores of the media thread that the standard library does not cover: discarding what
//! queued on a socket before its session started, and the kernel-side source filter (a UDP socket
//! connected to the latched far end receives nothing from anyone else, so a flood from another
//! host is dropped by the kernel, not read and rejected by us) with its undoing when the far end
//! moves its media.

use std::io;
use std::net::UdpSocket;

/// Discard what is queued on a non-blocking socket, at most `max` datagrams; how many were.
pub fn discard_queued(socket: &UdpSocket, max: usize) -> usize {
    let mut buf = [0u8; 64];
    (0..max)
        .take_while(|_| socket.recv_from(&mut buf).is_ok())
        .count()
}

/// Dissolve a UDP socket's association (connect to `AF_UNSPEC`, POSIX): it receives from anyone
/// again. The socket must be bound to an explicit port (as RTP ports are): Linux gives an
/// ephemeral port (bound as port 0) back on disconnect.
#[cfg(unix)]
pub fn disconnect(socket: &UdpSocket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: all-zero is a valid `sockaddr`; only its family is read by connect(AF_UNSPEC).
    let mut addr: libc::sockaddr = unsafe { std::mem::zeroed() };
    addr.sa_family = libc::AF_UNSPEC as libc::sa_family_t;
    let len = libc::socklen_t::try_from(std::mem::size_of::<libc::sockaddr>())
        .expect("invariant: sizeof(sockaddr) fits socklen_t");
    // SAFETY: the descriptor is open for as long as `socket` is borrowed, and `addr` is a valid
    // sockaddr of `len` bytes that outlives the call.
    let r = unsafe { libc::connect(socket.as_raw_fd(), &addr, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

#[cfg(not(unix))]
pub fn disconnect(_socket: &UdpSocket) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn socket() -> UdpSocket {
        let s = UdpSocket::bind("127.0.0.1:0").expect("loopback socket");
        s.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        s
    }

    #[test]
    fn a_connected_socket_hears_only_its_peer_until_disconnected() {
        let (peer, other) = (socket(), socket());
        // An explicit port, as the media thread binds them.
        let port = socket().local_addr().expect("addr").port();
        let us = UdpSocket::bind(("127.0.0.1", port)).expect("explicit port");
        us.set_read_timeout(Some(Duration::from_millis(200)))
            .expect("timeout");
        let addr = us.local_addr().expect("addr");
        us.connect(peer.local_addr().expect("addr")).expect("connect");
        other.send_to(b"spoof", addr).expect("send");
        peer.send_to(b"peer", addr).expect("send");
        let mut buf = [0u8; 16];
        let (n, from) = us.recv_from(&mut buf).expect("the peer's datagram");
        assert_eq!(
            (&buf[..n], from),
            (&b"peer"[..], peer.local_addr().expect("addr"))
        );
        disconnect(&us).expect("disconnect");
        other.send_to(b"other", addr).expect("send");
        let (n, from) = us.recv_from(&mut buf).expect("anyone again");
        assert_eq!(
            (&buf[..n], from),
            (&b"other"[..], other.local_addr().expect("addr"))
        );
    }

    #[test]
    fn discarding_is_bounded() {
        let (us, peer) = (socket(), socket());
        us.set_nonblocking(true).expect("non-blocking");
        let addr = us.local_addr().expect("addr");
        for _ in 0..5 {
            peer.send_to(b"x", addr).expect("send");
        }
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(discard_queued(&us, 3), 3);
        assert_eq!(discard_queued(&us, 100), 2);
        assert_eq!(discard_queued(&us, 100), 0);
    }
}
