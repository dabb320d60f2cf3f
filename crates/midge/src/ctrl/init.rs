//! `dynsec init <file> <admin-user> [password]`: the first dynamic-security configuration,
//! the document `mosquitto_ctrl` 2.0.11 writes — one client (the admin, role `admin`), the
//! `admin` role with its eight ACLs, the default ACL access — with the password as
//! PBKDF2-SHA512 in the 2.0 form (`password`, `salt`, `iterations`, base64), which both
//! Mosquitto 2.0 and 2.1 load.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use midge_core::password::{HashKind, PasswordHash, DEFAULT_SALT_LEN};
use serde_json::{json, Value};

use super::json::to_pretty;
use super::Exit;

/// PBKDF2 iterations `mosquitto_ctrl` 2.0 writes (`PW_DEFAULT_ITERATIONS`).
pub const INIT_ITERATIONS: u32 = 101;

/// The admin role's ACLs, in mosquitto_ctrl's order.
const ADMIN_ACLS: [(&str, &str); 8] = [
    ("publishClientSend", "$CONTROL/dynamic-security/#"),
    ("publishClientReceive", "$CONTROL/dynamic-security/#"),
    ("subscribePattern", "$CONTROL/dynamic-security/#"),
    ("publishClientReceive", "$SYS/#"),
    ("subscribePattern", "$SYS/#"),
    ("publishClientReceive", "#"),
    ("subscribePattern", "#"),
    ("unsubscribePattern", "#"),
];

/// The document for `username` with this password hash (salt and iterations inside).
pub fn document(username: &str, hash: &PasswordHash) -> Value {
    let PasswordHash::Pbkdf2Sha512 {
        iterations,
        salt,
        hash,
    } = hash
    else {
        unreachable!("dynsec init writes PBKDF2-SHA512 only");
    };
    let acls: Vec<Value> = ADMIN_ACLS
        .iter()
        .map(|(acltype, topic)| json!({ "acltype": acltype, "topic": topic, "allow": true }))
        .collect();
    json!({
        "clients": [{
            "username": username,
            // cJSON looks keys up case-insensitively, so the plugin reads this as `textname`.
            "textName": "Dynsec admin user",
            "password": STANDARD.encode(hash),
            "salt": STANDARD.encode(salt),
            "iterations": iterations,
            "roles": [{ "rolename": "admin" }],
        }],
        "roles": [{ "rolename": "admin", "acls": acls }],
        "defaultACLAccess": {
            "publishClientSend": false,
            "publishClientReceive": true,
            "subscribe": false,
            "unsubscribe": true,
        },
    })
}

/// Hashes `password` with a fresh 12-byte salt, as mosquitto_ctrl 2.0 does.
pub fn hash_password(password: &[u8]) -> Result<PasswordHash, String> {
    let mut salt = [0u8; DEFAULT_SALT_LEN];
    getrandom::fill(&mut salt).map_err(|e| format!("Unable to generate a salt: {e}"))?;
    Ok(PasswordHash::new(
        HashKind::Pbkdf2Sha512,
        password,
        &salt,
        Some(INIT_ITERATIONS),
    ))
}

/// `args` are the words after `init`.
pub fn run(args: &[String]) -> Exit {
    if args.len() < 2 {
        eprintln!("dynsec init: Not enough arguments - filename, or admin-user missing.");
        return Exit::Invalid;
    }
    if args.len() > 3 {
        eprintln!("dynsec init: Too many arguments.");
        return Exit::Invalid;
    }
    let (file, user) = (&args[0], &args[1]);
    let password = match args.get(2) {
        Some(p) => p.clone(),
        None => match super::get_password(
            &format!("New password for {user}: "),
            Some(&format!("Reenter password for {user}: ")),
            false,
        ) {
            Ok(p) => p,
            Err(_) => return Exit::Failure,
        },
    };
    let hash = match hash_password(password.as_bytes()) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("dynsec init: {e}.");
            return Exit::Failure;
        }
    };
    let text = to_pretty(&document(user, &hash));
    // Created exclusively: an existing file is never overwritten (mosquitto_ctrl checks then
    // opens, which races), and with mode 0600 because the file holds password hashes.
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .and_then(|mut f| {
            f.write_all(text.as_bytes())?;
            f.sync_all()
        });
    match written {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            eprintln!("dynsec init: '{file}' already exists. Remove the file or use a different location..");
            return Exit::Failure;
        }
        Err(_) => {
            eprintln!("dynsec init: Unable to open '{file}' for writing.");
            return Exit::Failure;
        }
    }
    println!("The client '{user}' has been created in the file '{file}'.");
    println!(
        "This client is configured to allow you to administer the dynamic security plugin only."
    );
    println!("It does not have access to publish messages to normal topics.");
    println!("You should create your application clients to do that, for example:");
    println!("   midge ctrl <connect options> dynsec createClient <username>");
    println!("   midge ctrl <connect options> dynsec createRole <rolename>");
    println!("   midge ctrl <connect options> dynsec addRoleACL <rolename> publishClientSend my/topic [priority]");
    println!(
        "   midge ctrl <connect options> dynsec addClientRole <username> <rolename> [priority]"
    );
    println!(
        "See https://mosquitto.org/documentation/dynamic-security/ for details of all commands."
    );
    Exit::Success
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_is_mosquitto_ctrls() {
        let hash = PasswordHash::new(HashKind::Pbkdf2Sha512, b"pw", &[7u8; 12], Some(101));
        let text = to_pretty(&document("admin", &hash));
        let PasswordHash::Pbkdf2Sha512 { hash: h, .. } = &hash else {
            unreachable!()
        };
        let expected = format!(
            "{{\n\t\"clients\":\t[{{\n\t\t\t\"username\":\t\"admin\",\n\t\t\t\"textName\":\t\"Dynsec admin user\",\n\t\t\t\"password\":\t\"{}\",\n\t\t\t\"salt\":\t\"BwcHBwcHBwcHBwcH\",\n\t\t\t\"iterations\":\t101,\n\t\t\t\"roles\":\t[{{\n\t\t\t\t\t\"rolename\":\t\"admin\"\n\t\t\t\t}}]\n\t\t}}],\n\t\"roles\":\t[{{\n\t\t\t\"rolename\":\t\"admin\",\n\t\t\t\"acls\":\t[",
            STANDARD.encode(h)
        );
        assert!(text.starts_with(&expected), "{text}");
        assert!(text.contains("{\n\t\t\t\t\t\"acltype\":\t\"unsubscribePattern\",\n\t\t\t\t\t\"topic\":\t\"#\",\n\t\t\t\t\t\"allow\":\ttrue\n\t\t\t\t}]\n\t\t}],"));
        assert!(text.ends_with("\t\"defaultACLAccess\":\t{\n\t\t\"publishClientSend\":\tfalse,\n\t\t\"publishClientReceive\":\ttrue,\n\t\t\"subscribe\":\tfalse,\n\t\t\"unsubscribe\":\ttrue\n\t}\n}"));
        // The stored hash verifies.
        let doc: Value = serde_json::from_str(&text).unwrap();
        let client = &doc["clients"][0];
        let encoded = format!(
            "$7$101${}${}",
            client["salt"].as_str().unwrap(),
            client["password"].as_str().unwrap()
        );
        assert!(PasswordHash::parse(&encoded).unwrap().verify(b"pw"));
    }
}
