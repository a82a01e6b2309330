<?php
/**
 * Gives the wiki its tables: maintenance/install.php when the database has none
 * (the first start of the first replica), maintenance/update.php otherwise
 * (unless MEDIAWIKI_UPDATE=false). Replicas starting together take turns: the
 * work is done under a named lock in the database.
 *
 * Exit status: 0 done, 1 the database is not reachable yet (try again later),
 * anything else: the maintenance script's failure.
 */

const MW = '/usr/share/mediawiki';
const LOCK = 'corral-mediawiki-setup';

function env( string $name, ?string $default = null ): ?string {
	$value = getenv( $name );
	return ( $value === false || $value === '' ) ? $default : $value;
}

function say( string $message ): void {
	fwrite( STDERR, gmdate( 'Y-m-d\TH:i:s\Z' ) . " mediawiki: $message\n" );
}

function secretFile( string $value ): string {
	$path = tempnam( sys_get_temp_dir(), 'mw' );
	chmod( $path, 0600 );
	file_put_contents( $path, $value );
	return $path;
}

$host = env( 'MEDIAWIKI_DB_HOST', 'localhost' );
$port = (int)env( 'MEDIAWIKI_DB_PORT', '3306' );
if ( preg_match( '/^([^:]+):(\d+)$/', $host, $m ) ) {
	[ , $host, $port ] = [ null, $m[1], (int)$m[2] ];
}
$name = env( 'MEDIAWIKI_DB_NAME', 'my_wiki' );
$user = env( 'MEDIAWIKI_DB_USER', 'wikiuser' );
$password = env( 'MEDIAWIKI_DB_PASSWORD', '' );
$prefix = env( 'MEDIAWIKI_DB_PREFIX', '' );

mysqli_report( MYSQLI_REPORT_OFF );
$db = mysqli_init();
$db->options( MYSQLI_OPT_CONNECT_TIMEOUT, 5 );
if ( !@$db->real_connect( $host, $user, $password, $name, $port ) ) {
	say( "database $name on $host:$port not reachable yet: " . mysqli_connect_error() );
	exit( 1 );
}
$locked = $db->query( "SELECT GET_LOCK('" . LOCK . "', 900)" );
if ( !$locked || (int)$locked->fetch_row()[0] !== 1 ) {
	say( 'could not take the setup lock: ' . $db->error );
	exit( 1 );
}

$tables = $db->query( "SHOW TABLES LIKE '" . $db->real_escape_string( $prefix . 'page' ) . "'" );
$fresh = $tables !== false && $tables->num_rows === 0;
$files = [];
if ( $fresh ) {
	$admin = env( 'MEDIAWIKI_ADMIN_USER', 'Admin' );
	$adminPassword = env( 'MEDIAWIKI_ADMIN_PASSWORD' );
	if ( $adminPassword === null ) {
		$adminPassword = bin2hex( random_bytes( 16 ) );
		say( "MEDIAWIKI_ADMIN_PASSWORD is not set: $admin gets a random password "
			. '(set one with maintenance/changePassword.php)' );
	}
	$confpath = sys_get_temp_dir() . '/mw-install-' . getmypid();
	@mkdir( $confpath, 0700 );
	$files = [ $dbpass = secretFile( $password ), $pass = secretFile( $adminPassword ) ];
	$command = [
		'php', MW . '/maintenance/install.php', '--quiet',
		'--confpath', $confpath,
		'--dbtype', env( 'MEDIAWIKI_DB_TYPE', 'mysql' ),
		'--dbserver', "$host:$port",
		'--dbname', $name,
		'--dbuser', $user,
		'--dbpassfile', $dbpass,
		'--dbprefix', $prefix,
		'--installdbuser', $user,
		'--installdbpass', $password,
		'--server', env( 'MEDIAWIKI_SERVER', 'http://localhost' ),
		'--scriptpath', env( 'MEDIAWIKI_SCRIPT_PATH', '/w' ),
		'--lang', env( 'MEDIAWIKI_LANGUAGE', 'en' ),
		'--passfile', $pass,
		'--skins', 'Vector',
		env( 'MEDIAWIKI_SITE_NAME', 'MediaWiki' ),
		$admin,
	];
	say( "database $name has no tables: installing MediaWiki's schema" );
} elseif ( strtolower( env( 'MEDIAWIKI_UPDATE', 'true' ) ) !== 'false' ) {
	$command = [ 'php', MW . '/maintenance/update.php', '--quick' ];
	say( "database $name has the wiki's tables: bringing them up to date (update.php)" );
} else {
	$command = null;
}

$status = 0;
if ( $command !== null ) {
	// The install reads the settings it is given, not LocalSettings.php.
	$env = $fresh ? [ 'MW_CONFIG_FILE' => '/nonexistent' ] : [];
	$process = proc_open( $command, [ 0 => [ 'file', '/dev/null', 'r' ], 1 => STDERR, 2 => STDERR ],
		$pipes, MW, $env + getenv() );
	$status = $process === false ? 3 : proc_close( $process );
}
foreach ( $files as $file ) {
	@unlink( $file );
}
if ( isset( $confpath ) ) {
	@unlink( "$confpath/LocalSettings.php" );
	@rmdir( $confpath );
}
$db->query( "DO RELEASE_LOCK('" . LOCK . "')" );
if ( $status !== 0 ) {
	say( "the maintenance script failed (exit status $status)" );
	exit( $status === 1 ? 4 : $status );
}
say( $fresh ? 'schema installed' : 'schema up to date' );
exit( 0 );
