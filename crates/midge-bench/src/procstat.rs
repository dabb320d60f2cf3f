//! What the kernel says about a process: CPU time and resident memory from /proc, and this
//! process's own file descriptor limit.
//!
//! CPU time is the fair figure on a small machine: when the tool and the broker share two
//! cores, messages per second mostly measure whichever is slower, while the broker's CPU
//! seconds per delivered message measure the broker alone.

use std::io;

/// utime + stime of a process, in seconds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct CpuTime {
    pub user_s: f64,
    pub system_s: f64,
}

impl CpuTime {
    pub fn total_s(&self) -> f64 {
        self.user_s + self.system_s
    }
}

/// `pid` None reads this process (`/proc/self`).
fn proc_path(pid: Option<u32>, file: &str) -> String {
    match pid {
        Some(p) => format!("/proc/{p}/{file}"),
        None => format!("/proc/self/{file}"),
    }
}

fn clock_ticks_per_s() -> f64 {
    // SAFETY: sysconf only reads a constant of the running system.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// CPU time used so far by `pid` (all its threads).
pub fn cpu_time(pid: Option<u32>) -> io::Result<CpuTime> {
    let text = std::fs::read_to_string(proc_path(pid, "stat"))?;
    let (user, system) = parse_stat_times(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "unreadable /proc stat"))?;
    let hz = clock_ticks_per_s();
    Ok(CpuTime {
        user_s: user as f64 / hz,
        system_s: system as f64 / hz,
    })
}

/// utime and stime (fields 14 and 15, in clock ticks) from a /proc/PID/stat line. The command
/// name (field 2) is in parentheses and may itself hold spaces and parentheses, so fields are
/// counted from the last ')'.
pub fn parse_stat_times(stat: &str) -> Option<(u64, u64)> {
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_ascii_whitespace();
    // After ')' comes field 3 (state); utime is field 14, i.e. the 12th from here.
    let utime = fields.nth(11)?.parse().ok()?;
    let stime = fields.next()?.parse().ok()?;
    Some((utime, stime))
}

/// Resident set size of `pid` in KiB (VmRSS).
pub fn rss_kib(pid: Option<u32>) -> io::Result<u64> {
    let text = std::fs::read_to_string(proc_path(pid, "status"))?;
    parse_vm_rss_kib(&text)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no VmRSS in /proc status"))
}

pub fn parse_vm_rss_kib(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line["VmRSS:".len()..]
        .split_ascii_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Raises this process's soft RLIMIT_NOFILE to its hard limit and returns the new soft
/// limit: a `connections` run holds one descriptor per client.
pub fn raise_nofile_limit() -> io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return Err(io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: lim.rlim_max,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads the struct we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } != 0 {
            return Err(io::Error::last_os_error());
        }
        lim.rlim_cur = lim.rlim_max;
    }
    Ok(rlim_u64(lim.rlim_cur))
}

/// `rlim_t` is u64 on 64-bit Linux but not on every target.
#[allow(clippy::unnecessary_cast)]
fn rlim_u64(v: libc::rlim_t) -> u64 {
    v as u64
}

/// A broker's CPU and memory at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    pub cpu: CpuTime,
    pub rss_kib: u64,
}

pub fn sample(pid: u32) -> io::Result<Sample> {
    Ok(Sample {
        cpu: cpu_time(Some(pid))?,
        rss_kib: rss_kib(Some(pid))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line_with_awkward_name() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 1234 0 0 0 \
                    250 75 0 0 20 0 3 0 100 12345678 500 18446744073709551615";
        assert_eq!(parse_stat_times(line), Some((250, 75)));
        assert_eq!(parse_stat_times("1 (x) S 1 2"), None);
    }

    #[test]
    fn vm_rss() {
        let status = "Name:\tmidge\nVmPeak:\t  9000 kB\nVmRSS:\t    6144 kB\nThreads:\t3\n";
        assert_eq!(parse_vm_rss_kib(status), Some(6144));
        assert_eq!(parse_vm_rss_kib("Name:\tx\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let pid = std::process::id();
        let s = sample(pid).unwrap();
        assert!(s.rss_kib > 0);
        assert!(s.cpu.total_s() >= 0.0);
        assert!(cpu_time(None).is_ok());
    }

    #[test]
    fn nofile_limit_is_raised_to_the_hard_limit() {
        let soft = raise_nofile_limit().unwrap();
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: as above.
        assert_eq!(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) }, 0);
        assert_eq!(soft, rlim_u64(lim.rlim_cur));
        assert_eq!(lim.rlim_cur, lim.rlim_max);
    }
}
