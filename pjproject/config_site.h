/*
 * rtbridge's compile-time limits for pjproject (copied to pjlib/include/pj/config_site.h).
 *
 * pjproject sizes its tables at compile time; pjsua2-python's PyPI wheel keeps the defaults
 * (4 call slots, a 64-handle select() ioqueue) and cannot carry a B2BUA. Every number here
 * is read back at run time (pjsua2_rtbridge.BUILD, and UaConfig().maxCalls) so the agent
 * can size itself from the build and refuse a configuration the build cannot hold.
 */

/* Call slots: a bridge holds two (publisher leg + buyer leg). */
#define PJSUA_MAX_CALLS             1024

/* Call recorders (sip/b2bua/recorder.py): one per leg of a recorded call, so as many as
 * call slots; pjsua's default of 32 recorded 16 calls at once. */
#define PJSUA_MAX_RECORDERS         PJSUA_MAX_CALLS

/* WAV files' buffer (recorders and players): pjmedia writes a recorder's buffer to its file
 * when full. 4,000 bytes (its default) is a write() every 250 ms per recorder, 4,000 a
 * second at 500 recorded calls; 32,000 is one every 2 s per recorder, which is also what a
 * crash can lose of a recording. Memory: 32 kB per recorder. */
#define PJMEDIA_FILE_PORT_BUFSIZE   32000

/* Announcement players (sip/b2bua/announcer.py): one per bridge while its recording notice
 * plays; pjsua's default of 32 would announce 32 calls at once. */
#define PJSUA_MAX_PLAYERS           PJSUA_MAX_CALLS

/* One conference port per leg, one per recorder and one per announcing bridge's player,
 * plus the null sound device and a margin. */
#define PJSUA_MAX_CONF_PORTS        (3 * PJSUA_MAX_CALLS + 16)

/* epoll ioqueue (configure --enable-epoll). Each leg opens RTP + RTCP sockets, an INVITE
 * refused before routing opens them too, and closed keys come back only after
 * PJ_IOQUEUE_KEY_FREE_DELAY (500 ms): size for bursts, not for the steady state. */
#define PJ_IOQUEUE_MAX_HANDLES      8192

/* Transactions and dialogs live in hash tables sized by these; INVITE floods create one
 * transaction per request. */
#define PJSIP_MAX_TSX_COUNT         (64 * 1024 - 1)
#define PJSIP_MAX_DIALOG_COUNT      (64 * 1024 - 1)

/* Accounts: one per outbound credential set (buyers/trunks that challenge) and per IPv6
 * transport. The default of 8 would cap the number of authenticated trunks. */
#define PJSUA_MAX_ACC               128

/* IPv6 for signalling *and* media (off by default in pjlib). */
#define PJ_HAS_IPV6                 1

/* Audio only. */
#define PJMEDIA_HAS_VIDEO           0

/* A server keeps no sound device; SRTP is from Debian's libsrtp2 (configure). */
#define PJMEDIA_HAS_SRTP            1

/* Many short-lived sockets: bigger TCP/TLS listener backlog for bursts. */
#define PJSIP_TCP_TRANSPORT_BACKLOG 1024
#define PJSIP_TLS_TRANSPORT_BACKLOG 1024

/* Retry-After of the 503 pjsua sends by itself when every call slot is taken
 * (patches/0001-slots-full-503.patch; stock pjsua answers 486 Busy Here there). */
#define RTBRIDGE_SLOTS_FULL_RETRY_AFTER "5"

/* Throughput: pjproject's own PJ_CONFIG_MAXIMUM_SPEED choices (config_site_sample.h) that
 * keep behaviour. A 4 MB socket buffer rides out a stall of the agent thread in an INVITE
 * burst instead of dropping datagrams (the kernel caps it at net.core.rmem_max). */
#define PJSIP_UDP_SO_RCVBUF_SIZE    (4 * 1024 * 1024)
#define PJSIP_UDP_SO_SNDBUF_SIZE    (4 * 1024 * 1024)
#define PJ_SCANNER_USE_BITWISE      0
#undef  PJ_OS_HAS_CHECK_STACK
#define PJ_OS_HAS_CHECK_STACK       0
#define PJ_DEBUG                    0
#define PJSIP_SAFE_MODULE           0
#define PJ_HAS_STRICMP_ALNUM        0
#define PJSIP_UNESCAPE_IN_PLACE     1

/* Each ioqueue has one poller (SIP: the agent thread; RTP: the media thread), so plain
 * level-triggered epoll serves; EPOLLEXCLUSIVE/ONESHOT (the default "auto") re-arm every
 * socket with an epoll_ctl() per packet — a third of the media thread's system calls. */
#define PJ_IOQUEUE_DEFAULT_EPOLL_FLAGS          0
#define PJ_IOQUEUE_MAX_EVENTS_IN_SINGLE_POLL    64
