import { chmod, mkdir, writeFile } from "node:fs/promises";
import { join } from "node:path";

/**
 * The quickstart's app `hello`: its code and its web server config are the code line `hello`, made on
 * the controller from a directory (`gild code create hello --from-dir`) and mounted read-only at
 * /srv/code; its data (a visit counter) is data/hello on each host, mounted at /srv/app. The image is
 * plain Debian with nginx and php-fpm: the runtime that every app shares and that a rollout patches.
 */
export const HELLO_PORT = 8080;
export const HELLO_DATA_MOUNT = "/srv/app";
export const HELLO_CODE_MOUNT = "/srv/code";

const START = `#!/bin/sh
# PID 1 of the container: php-fpm and nginx as children, SIGTERM stops both cleanly.
set -e
mkdir -p /run/php /var/lib/nginx /var/log/nginx
# The counter is the app's own data: made once, kept across every switch, writable by php-fpm.
if [ ! -f /srv/app/visits.txt ]; then echo 0 > /srv/app/visits.txt; chown www-data:www-data /srv/app/visits.txt; fi
fpm=$(ls /usr/sbin/php-fpm* | head -n 1)
"$fpm" --nodaemonize --fpm-config /srv/code/php-fpm.conf &
fpm_pid=$!
nginx -c /srv/code/nginx.conf -g 'daemon off;' &
nginx_pid=$!
trap 'kill -TERM $nginx_pid $fpm_pid 2>/dev/null; wait; exit 0' TERM INT
echo "hello: nginx and $fpm started"
wait $nginx_pid
echo "hello: nginx ended" >&2
kill -TERM $fpm_pid 2>/dev/null
exit 1
`;

const NGINX = `user www-data;
worker_processes 1;
pid /run/nginx.pid;
error_log stderr warn;
events { worker_connections 64; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  server {
    listen ${HELLO_PORT};
    root /srv/code/public;
    index index.php;
    location ~ \\.php$ {
      fastcgi_pass unix:/run/php/hello.sock;
      include /etc/nginx/fastcgi_params;
      fastcgi_param SCRIPT_FILENAME $document_root$fastcgi_script_name;
    }
  }
}
`;

const FPM = `[global]
error_log = /proc/self/fd/2
daemonize = no

[hello]
user = www-data
group = www-data
listen = /run/php/hello.sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = static
pm.max_children = 2
; The container's environment (GILD_IMAGE, GILD_CODE, GILD_GENERATION) reaches the page.
clear_env = no
catch_workers_output = yes
`;

const index = (release: string) => `<?php
// The app's code is a code line (read-only at /srv/code); its data is data/hello on the host, which
// survives every switch and rollback.
$counter = '/srv/app/visits.txt';
$fp = fopen($counter, 'c+');
flock($fp, LOCK_EX);
$visits = (int) stream_get_contents($fp) + 1;
ftruncate($fp, 0); rewind($fp); fwrite($fp, (string) $visits); fflush($fp);
flock($fp, LOCK_UN); fclose($fp);
header('Content-Type: text/plain');
printf("Hello from gild!\\n");
printf("image:      %s (generation %s)\\n", getenv('GILD_IMAGE') ?: '?', getenv('GILD_GENERATION') ?: '?');
printf("code:       %s (${release})\\n", getenv('GILD_CODE') ?: '?');
printf("php:        %s\\n", PHP_VERSION);
printf("mbstring:   %s\\n", extension_loaded('mbstring') ? 'yes' : 'no');
printf("visits:     %d (kept in the app's data dir)\\n", $visits);
`;

const HEALTHZ = `<?php
// nginx answered and PHP ran: the app is healthy.
header('Content-Type: text/plain');
echo "ok\\n";
`;

/**
 * Write the app's code into `dir` (on the controller's machine), the source of `gild code create|update
 * hello --from-dir`; `release` is a line of the page, so the next version differs in one file.
 */
export async function writeHelloCode(dir: string, release: string): Promise<void> {
  await mkdir(join(dir, "public"), { recursive: true });
  await writeFile(join(dir, "start.sh"), START);
  await chmod(join(dir, "start.sh"), 0o755);
  await writeFile(join(dir, "nginx.conf"), NGINX);
  await writeFile(join(dir, "php-fpm.conf"), FPM);
  await writeFile(join(dir, "public", "index.php"), index(release));
  await writeFile(join(dir, "public", "healthz.php"), HEALTHZ);
}

/**
 * The --quick variant's code (busybox httpd, no PHP): a page naming `release`, and /healthz. Its
 * command serves the code mount, with a shell as PID 1 that stops httpd on SIGTERM.
 */
export async function writeQuickHelloCode(dir: string, release: string): Promise<void> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, "index.html"), `hello from gild (${release})\n`);
  await writeFile(join(dir, "healthz"), "ok\n");
}

export const QUICK_HELLO_COMMAND = `/bin/httpd -f -p ${HELLO_PORT} -h ${HELLO_CODE_MOUNT} & child=$!; trap 'kill -TERM $child; exit 0' TERM; wait $child`;
